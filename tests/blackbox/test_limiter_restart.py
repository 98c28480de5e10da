"""The shared limiter survives its own death: Ray restarts it, and its clock and books hold."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.errors import BudgetExhaustedError
from izero.blackbox.limiter_state import TicketBook, restore, snapshot
from izero.blackbox.pool import ScoringPool
from izero.blackbox.ratelimit import (
    LeaseClient,
    LimiterCore,
    RemoteLimiter,
    Settlement,
    create_limiter_actor,
)
from izero.blackbox.simulated import max_in_window

from .conftest import MODEL, SECRET_KEY


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_snapshot_restores_clock_and_books_on_another_clock():
    old_clock = FakeClock(1000.0)
    old = LimiterCore(rpm=600, tpm=None, margin=0.0, horizon_s=0.5, clock=old_clock, max_calls=50)
    granted = old.lease(5, est_tokens=10, est_cost=0.0)  # slots at +0, 0.1, ..., 0.4 s
    old.settle([Settlement(10, 12, 0.0, 0.0, sent=True, paid=True)] * 2)
    old.rate_limited_by_server(None)  # a 429: paused 1 s, rate cut
    state = snapshot(old, wall_now=5000.0)

    # restarted 0.3 s later on a host whose monotonic clock reads something else entirely
    new_clock = FakeClock(7.0)
    new = LimiterCore(rpm=600, tpm=None, margin=0.0, horizon_s=0.5, clock=new_clock, max_calls=50)
    age = restore(new, state, wall_now=5000.3)
    assert age == pytest.approx(0.3)
    assert new.calls == 2 and new.tokens == 24 and new.res_calls == 3 and new.rate_limited == 1
    assert new.rate_factor == pytest.approx(old.rate_factor)
    # the pause ends where it ended before the crash: 1 s after the 429, 0.7 s from now
    assert new.paused_until - new_clock() == pytest.approx(0.7)
    delays = new.lease(1, est_tokens=10, est_cost=0.0)
    assert delays[0] == pytest.approx(0.7)
    assert len(granted) == 5 and new.usage().slots_granted == 6


def test_tickets_book_each_settlement_once_and_repeat_a_grant():
    book = TicketBook()
    assert not book.seen(("a", 1)) and book.seen(("a", 1)) and not book.seen(("b", 1))
    assert book.grant(("a", 2)) is None
    book.remember_grant(("a", 2), "grant-2")
    assert book.grant(("a", 2)) == "grant-2" and book.grant(("a", 3)) is None
    again = TicketBook()
    again.load(book.to_dict(str), str)
    assert again.seen(("a", 1)) and again.grant(("a", 2)) == "grant-2"


def test_lead_of_grants_is_capped():
    clock = FakeClock()
    core = LimiterCore(rpm=6000, tpm=None, margin=0.0, horizon_s=0.1, clock=clock)  # 10 ms
    granted = []
    for _ in range(20):  # twenty workers asking at once, each for a full horizon
        granted.extend(core.lease(100, est_tokens=1, est_cost=0.0))
    assert max(granted) <= core.max_lead_s() + core.horizon_s
    assert core.lease(10, est_tokens=1, est_cost=0.0) == []  # ask again shortly
    clock.now += 1.0
    assert core.lease(10, est_tokens=1, est_cost=0.0)


def _lease_many(limiter, n_calls: int) -> list[float]:
    """Acquire ``n_calls`` slots through a LeaseClient; returns the monotonic send times."""

    async def go() -> list[float]:
        client = LeaseClient(RemoteLimiter(limiter), horizon_s=0.5)
        sends = []
        for _ in range(n_calls):
            slot = await client.acquire(est_tokens=1, est_cost=0.0)
            sends.append(time.monotonic())
            client.release(slot, sent=True, paid=True, tokens=1)
        await client.close()
        return sends

    return asyncio.run(go())


@pytest.mark.parametrize("with_state", [True, False])
def test_killed_limiter_actor_restarts_without_bunching(ray_local, tmp_path, with_state):
    ray = ray_local
    config = EndpointConfig(base_url="http://127.0.0.1:9/v1", model="m", rpm=600, max_calls=100)
    state_dir = tmp_path / "limiter" if with_state else None
    limiter = create_limiter_actor(config, state_dir=state_dir)
    try:
        before = _lease_many(limiter, 10)  # 100 ms apart
        first = ray.get(limiter.info.remote())
        ray.kill(limiter, no_restart=False)  # the process dies; Ray starts a new one
        info = ray.get(limiter.info.remote())
        while info["pid"] == first["pid"]:  # the kill is asynchronous
            time.sleep(0.05)
            info = ray.get(limiter.info.remote())
        after = _lease_many(limiter, 5)
        usage = ray.get(limiter.usage.remote())
    finally:
        ray.kill(limiter)
    assert info["restarted"] and info["pid"] != first["pid"]
    sends = sorted(before + after)
    assert max_in_window(sends, 1.0) <= 10 + 1  # 600 RPM: 10 per second (+1 at the edge)
    assert min(b - a for a, b in itertools.pairwise(sends)) >= 0.1 - 0.02
    if with_state:
        assert usage.calls == 15  # the books survived the crash
    else:
        assert usage.calls == 5  # counted from zero, as its warning says
        assert after[0] - before[-1] >= 8 * 0.5  # it waited out every slot it may have granted


def _config(server, **overrides) -> EndpointConfig:
    options = {"base_url": server.base_url, "model": MODEL, "api_key": SECRET_KEY}
    options.update(overrides)
    return EndpointConfig(**options)


def test_pool_keeps_the_limit_and_the_budget_when_its_limiter_dies(
    ray_local, make_server, sum_task, tmp_path
):
    """The limiter is killed while two workers score at the limit: every answer comes back, no
    request is paid twice, no second holds more than the limit, and the budget cap still counts
    the calls paid before the crash."""
    ray = ray_local
    server = make_server(rpm=1200, window_s=1.0, latency_s=0.05)  # 20 per second
    examples = sum_task.induce[:20]
    instructions = [f"Add the two numbers ({i})" for i in range(6)]
    pool = ScoringPool(
        _config(server, rpm=1200, max_calls=200), num_workers=2, cache_dir=tmp_path, seed=1
    )

    async def score_and_kill():
        scoring = asyncio.ensure_future(pool.score_many(instructions, examples, "exact_match"))
        while server.stats()["n_requests"] < 40:
            await asyncio.sleep(0.05)
        ray.kill(pool.limiter, no_restart=False)
        return await scoring

    try:
        results = asyncio.run(score_and_kill())
        usage = pool.usage()
        restarted = ray.get(pool.limiter.info.remote())["restarted"]
        # the books hold 120 of 200 calls: a second sweep of 120 more does not fit
        with pytest.raises(BudgetExhaustedError, match="max_calls=200"):
            more = [f"Sum the numbers ({i})" for i in range(6)]
            asyncio.run(pool.score_many(more, examples, "exact_match"))
    finally:
        pool.close()
    assert restarted
    assert all(r.n_answered == 20 for r in results)
    stats = server.stats()
    # the restarted limiter does not bunch sends into the server's window; one 429 is allowed
    # where a busy 2-core machine stalls a worker's event loop past a slot (it is retried and
    # paid once, as the checks below show)
    assert stats["by_status"].get("429", 0) <= 1
    assert max_in_window(stats["times"], 1.0) <= 20
    keys = stats["ok_keys"]
    assert len(keys) == len(set(keys))  # nothing paid twice
    assert usage.calls == 120
    assert 120 < len(keys) <= 200  # spent the rest of the cap, and not more
    assert not list((tmp_path / "limiter").glob("*.json"))  # closed for good: file removed
