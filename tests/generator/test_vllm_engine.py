"""The vLLM engine in a generator actor (one engine core for the module): token-for-token the
HF engine's greedy output in float32, seeded sampling, refused features, clean shutdown."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import psutil
import pytest

from izero.errors import GeneratorError
from izero.generator import FeatureRequest, GenerationRequest, GeneratorPool, InstructionGenerator

from .conftest import DEMOS_A, DEMOS_B, DEMOS_C, z_point

KW = {"model": "tiny:llama", "dtype": "float32", "max_new_tokens": 24}
START_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def vllm_pool(ray_local):
    pool = GeneratorPool(
        engine="vllm", num_actors=1, batch_window_s=0.05, vllm_max_model_len=512, **KW
    )
    pool.wait_ready(timeout_s=START_TIMEOUT_S)
    yield pool
    pool.shutdown()


@pytest.fixture(scope="module")
def hf_engine() -> InstructionGenerator:
    return InstructionGenerator(device="cpu", **KW)


def _greedy_requests(n: int) -> list[GenerationRequest]:
    demos = (DEMOS_A, DEMOS_B, DEMOS_C)
    reqs = [
        GenerationRequest(demos=demos[k % 3], z=z_point(k), projection_seed=k % 4)
        for k in range(n - 3)
    ]
    return reqs + [GenerationRequest(demos=d) for d in demos]  # no soft prompt: shorter rows


def test_greedy_tokens_equal_the_hf_engine(ray_local, vllm_pool, hf_engine) -> None:
    reqs = _greedy_requests(64)
    got = ray_local.get(vllm_pool.actors[0].generate_tokens.remote(reqs), timeout=300)
    want = hf_engine.generate_tokens(reqs)
    assert sum(g == w for g, w in zip(got, want, strict=True)) == 64
    eos = hf_engine.tokenizer.eos_token_id
    assert any(w[-1] == eos and len(w) < 24 for w in want)  # eos stops are compared too
    assert len({tuple(w) for w in want}) > 32  # and the outputs are not degenerate


def test_pool_instructions_equal_the_hf_engine(vllm_pool, hf_engine) -> None:
    reqs = _greedy_requests(12)
    assert asyncio.run(vllm_pool.generate(reqs)) == hf_engine.generate(reqs)
    assert vllm_pool.generate_sync(reqs[:2], timeout_s=300) == hf_engine.generate(reqs[:2])
    (stats,) = vllm_pool.stats()
    assert stats["engine"] == "vllm" and stats["tokens_generated"] > 0


def test_sampling_is_seeded_and_batch_independent(ray_local, vllm_pool) -> None:
    actor = vllm_pool.actors[0]

    def sampled(seed: int) -> GenerationRequest:
        return GenerationRequest(demos=DEMOS_A, temperature=1.0, sample_seed=seed)

    batch = [sampled(1), *_greedy_requests(6), sampled(2)]
    together = ray_local.get(actor.generate_tokens.remote(batch), timeout=300)
    alone = ray_local.get(actor.generate_tokens.remote([sampled(2), sampled(1)]), timeout=300)
    assert [together[0], together[-1]] == alone[::-1]
    draws = ray_local.get(actor.generate_tokens.remote([sampled(s) for s in range(6)]))
    assert len({tuple(d) for d in draws}) >= 4  # other seeds, other samples


def test_features_are_refused_with_the_engine_that_serves_them(ray_local, vllm_pool) -> None:
    reqs = [FeatureRequest(demos=DEMOS_A, z=z_point(0))]
    with pytest.raises(GeneratorError, match="engine: hf"):
        asyncio.run(vllm_pool.features(reqs))
    with pytest.raises(GeneratorError, match="engine: hf"):  # the actor says the same
        ray_local.get(vllm_pool.actors[0].features.remote(reqs), timeout=60)


def test_too_long_prompt_is_refused_before_vllm_sees_it(vllm_pool) -> None:
    long_demos = tuple((f"word {i} " * 20, "x") for i in range(20))
    with pytest.raises(GeneratorError, match="vllm_max_model_len"):
        vllm_pool.generate_sync([GenerationRequest(demos=long_demos)], timeout_s=60)
    assert vllm_pool.generate_sync(_greedy_requests(4)[:1], timeout_s=60)  # still serving


def test_shutdown_stops_the_engine_core_and_removes_its_files(vllm_pool) -> None:
    (stats,) = vllm_pool.stats()
    children = [psutil.Process(pid) for pid in stats["child_pids"]]
    workdir = Path(stats["engine_dir"])
    assert children and workdir.is_dir()  # vLLM's engine core runs beside the actor
    vllm_pool.shutdown()
    deadline = time.monotonic() + 60
    while any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in children):
        assert time.monotonic() < deadline, "vLLM processes outlived their actor"
        time.sleep(0.2)
    assert not workdir.exists()
