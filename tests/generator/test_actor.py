"""Ray actors and the pool on a real local Ray: identical actors, coalescing, restart + retry,
features in chunks that alternate with generation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from izero.errors import GeneratorError
from izero.generator import FeatureRequest, GenerationRequest, GeneratorPool, InstructionGenerator

from .conftest import DEMOS_A, DEMOS_B, DEMOS_C, z_point

POOL_KW = {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 10, "eos_token_id": None}


def _requests(n: int) -> list[GenerationRequest]:
    demos = (DEMOS_A, DEMOS_B, DEMOS_C)
    return [GenerationRequest(demos=demos[k % 3], z=z_point(k)) for k in range(n)]


@pytest.fixture(scope="module")
def pool2(ray_local):
    """Two CPU actors with a generous batching window (so concurrent calls coalesce)."""
    pool = GeneratorPool(num_actors=2, batch_window_s=0.3, **POOL_KW)
    pool.wait_ready(timeout_s=120)
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def expected() -> list[str]:
    return InstructionGenerator(**POOL_KW).generate(_requests(6))


def test_two_actors_give_identical_results(ray_local, pool2: GeneratorPool, expected) -> None:
    reqs = _requests(6)
    per_actor = ray_local.get([a.generate.remote(reqs) for a in pool2.actors], timeout=120)
    assert per_actor[0] == per_actor[1] == expected
    pids = {s["pid"] for s in pool2.stats()}
    assert len(pids) == 2  # really two processes


def test_pool_splits_calls_and_keeps_order(pool2: GeneratorPool, expected) -> None:
    before = [s["requests"] for s in pool2.stats()]
    assert pool2.generate_sync(_requests(6), timeout_s=120) == expected
    after = [s["requests"] for s in pool2.stats()]
    assert [b - a for a, b in zip(before, after, strict=True)] == [3, 3]
    assert asyncio.run(pool2.generate(_requests(6))) == expected
    assert pool2.generate_sync([]) == []


def test_concurrent_callers_share_batches(ray_local, pool2: GeneratorPool, expected) -> None:
    actor = pool2.actors[0]
    before = ray_local.get(actor.stats.remote())
    reqs = _requests(6)
    refs = [actor.generate.remote([r]) for r in reqs]  # six callers, one request each
    results = ray_local.get(refs, timeout=120)
    after = ray_local.get(actor.stats.remote())
    assert [r[0] for r in results] == expected
    assert after["calls"] - before["calls"] == 6
    assert after["batches"] - before["batches"] < 6  # coalesced into shared batches


def test_a_bad_call_fails_alone_not_its_batch_mates(
    ray_local, pool2: GeneratorPool, expected
) -> None:
    actor = pool2.actors[1]
    good = actor.generate.remote(_requests(2))
    bad = actor.generate.remote([GenerationRequest(demos=DEMOS_A, z=(0.5,) * 3)])  # wrong d
    assert ray_local.get(good, timeout=120) == expected[:2]
    with pytest.raises(GeneratorError, match="n x 10"):
        ray_local.get(bad, timeout=120)


def _kill_when_busy(ray_local, actor) -> None:
    deadline = time.monotonic() + 60
    while not ray_local.get(actor.stats.remote())["busy"]:  # the batch is running now
        assert time.monotonic() < deadline, "the request never started"
        time.sleep(0.01)
    ray_local.kill(actor, no_restart=False)


def test_killed_actor_restarts_and_the_in_flight_request_completes(ray_local) -> None:
    slow = {**POOL_KW, "max_new_tokens": 300}  # ~1 s per call: time to kill it mid-way
    reqs = _requests(3)
    want = InstructionGenerator(**slow).generate(reqs)
    pool = GeneratorPool(num_actors=1, max_restarts=2, max_retries=2, batch_window_s=0, **slow)
    try:
        pool.wait_ready(timeout_s=120)
        actor = pool.actors[0]
        pid_before = ray_local.get(actor.stats.remote())["pid"]

        # Blocking API, caller in another thread.
        out: dict[str, object] = {}
        caller = threading.Thread(target=lambda: out.update(result=pool.generate_sync(reqs)))
        caller.start()
        _kill_when_busy(ray_local, actor)
        caller.join(timeout=180)
        assert not caller.is_alive()
        assert out["result"] == want
        assert pool.retries == 1
        stats = ray_local.get(actor.stats.remote())
        assert stats["pid"] != pid_before  # a restarted process served the retry
        assert stats["requests"] == 3

        # Async API: the same, from an event loop.
        async def call_and_kill() -> list[str]:
            task = asyncio.ensure_future(pool.generate(reqs))
            await asyncio.to_thread(_kill_when_busy, ray_local, actor)
            return await task

        assert asyncio.run(call_and_kill()) == want
        assert pool.retries == 2
        assert ray_local.get(actor.stats.remote())["pid"] not in (pid_before, stats["pid"])
    finally:
        pool.shutdown()


def test_retries_are_bounded(ray_local) -> None:
    pool = GeneratorPool(num_actors=1, max_restarts=0, max_retries=1, **POOL_KW)
    pool.shutdown()  # dead for good: every attempt fails
    with pytest.raises(GeneratorError, match="max_retries=1"):
        pool.generate_sync(_requests(1), timeout_s=60)
    assert pool.retries == 1


def test_pool_validates_before_starting_actors(ray_local) -> None:
    with pytest.raises(GeneratorError):
        GeneratorPool(num_actors=0, **POOL_KW)
    with pytest.raises(Exception, match="batch_size"):
        GeneratorPool(batch_size=0, **POOL_KW)


# ---------------------------------------------------------------------------- features
def _feature_requests(n: int, demos=DEMOS_C) -> list[FeatureRequest]:
    gen = torch.Generator().manual_seed(n)
    z = (torch.rand(n, 10, generator=gen) * 2 - 1).tolist()
    return [FeatureRequest(demos=demos, z=tuple(row), projection_seed=3) for row in z]


def test_pool_features_match_the_engine_in_order(pool2: GeneratorPool) -> None:
    reqs = [FeatureRequest(demos=d, z=z_point(k)) for k, d in enumerate(3 * (DEMOS_A, DEMOS_B))]
    want = InstructionGenerator(**POOL_KW).features(reqs)
    before = [s["feature_requests"] for s in pool2.stats()]
    got = asyncio.run(pool2.features(reqs))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    after = [s["feature_requests"] for s in pool2.stats()]
    assert [b - a for a, b in zip(before, after, strict=True)] == [3, 3]  # both actors served
    torch.testing.assert_close(pool2.features_sync(reqs[::-1], timeout_s=120), want.flip(0))
    assert asyncio.run(pool2.features([])).shape == (0, want.shape[1])


def test_a_bad_features_call_fails_alone(ray_local, pool2: GeneratorPool) -> None:
    actor = pool2.actors[0]
    good_reqs = _feature_requests(4)
    good = actor.features.remote(good_reqs)
    bad = actor.features.remote([FeatureRequest(demos=DEMOS_A, z=(0.5,) * 3)])  # wrong d
    want = InstructionGenerator(**POOL_KW).features(good_reqs)
    torch.testing.assert_close(ray_local.get(good, timeout=120), want, atol=1e-5, rtol=0)
    with pytest.raises(GeneratorError, match="n x 10"):
        ray_local.get(bad, timeout=120)


def test_generation_and_small_features_overtake_a_large_features_call(ray_local) -> None:
    """A big domain is computed in batch_size chunks that alternate with other work."""
    pool = GeneratorPool(num_actors=1, batch_size=4, batch_window_s=0, **POOL_KW)
    try:
        pool.wait_ready(timeout_s=120)
        actor = pool.actors[0]
        big, small = _feature_requests(1200), _feature_requests(3, demos=DEMOS_A)
        gen_reqs = _requests(2)

        async def scenario() -> tuple[list[str], torch.Tensor, torch.Tensor, dict]:
            features = asyncio.ensure_future(pool.features(big))
            while (await actor.stats.remote())["feature_batches"] == 0:  # it has started
                await asyncio.sleep(0.005)
            small_features = asyncio.ensure_future(pool.features(small))
            texts = await pool.generate(gen_reqs)  # submitted after the large call ...
            assert not features.done()  # ... and done before it
            small_done = await small_features
            assert not features.done()
            stats = await actor.stats.remote()
            return texts, small_done, await features, stats

        texts, small_feats, big_feats, stats = asyncio.run(scenario())
        engine = InstructionGenerator(**POOL_KW)
        assert texts == engine.generate(gen_reqs)
        torch.testing.assert_close(small_feats, engine.features(small), atol=1e-5, rtol=0)
        torch.testing.assert_close(big_feats, engine.features(big), atol=1e-5, rtol=0)
        assert stats["queued_feature_requests"] > 0  # the large call was still running
        assert ray_local.get(actor.stats.remote())["feature_batches"] >= 1203 // 4
    finally:
        pool.shutdown()
