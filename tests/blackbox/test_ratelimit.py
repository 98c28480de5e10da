"""The shared limiter's logic under a fake clock: the 60-second windows and budgets."""

from __future__ import annotations

import random

import pytest

from izero.blackbox.errors import BudgetExhaustedError
from izero.blackbox.ratelimit import LimiterCore, Settlement
from izero.blackbox.simulated import max_in_window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _drive(core: LimiterCore, clock: FakeClock, *, seconds: float, workers: int, seed: int):
    """Several workers leasing with random demand; returns the send times of all slots."""
    rng = random.Random(seed)
    sends: list[float] = []
    next_lease = [clock.now] * workers
    while clock.now < 1000.0 + seconds:
        for w in range(workers):
            if next_lease[w] <= clock.now:
                delays = core.lease(rng.randint(1, 50), est_tokens=10, est_cost=0.0)
                times = [clock.now + d for d in delays]
                sends.extend(times)
                next_lease[w] = max(clock.now, times[-1] - core.horizon_s)
        clock.now += rng.uniform(0.001, 0.3)
    return [t for t in sends if t <= 1000.0 + seconds]


@pytest.mark.parametrize("rpm", [60, 600, 10_000])
def test_no_60s_window_holds_more_than_rpm(rpm):
    clock = FakeClock()
    core = LimiterCore(rpm=rpm, tpm=None, margin=0.015, horizon_s=0.5, clock=clock)
    sends = _drive(core, clock, seconds=240, workers=4, seed=rpm)
    assert max_in_window(sends, 60.0) <= rpm
    # and it runs close to the limit: at least 97% of it in the busiest minute
    assert max_in_window(sends, 60.0) >= 0.97 * rpm
    # evenly paced: no second holds more than its share (+1 for the boundary)
    assert max_in_window(sends, 1.0) <= rpm / 60 + 1


def test_tpm_clock_charges_rate_tokens_and_corrects_underestimates():
    clock = FakeClock()
    core = LimiterCore(rpm=None, tpm=6000, margin=0.0, horizon_s=1.0, clock=clock)
    # 100 tokens reserved for the budget, but the clock charged 10 (0.1 s per call)
    first = core.lease(100, est_tokens=100, est_cost=0.0, rate_tokens=10)
    assert first == pytest.approx([0.1 * i for i in range(10)])
    # one call used 40 tokens: the 30 not charged push the next slot 0.3 s later
    core.settle([Settlement(100, 40, 0.0, 0.0, sent=True, paid=True, rate_tokens=10)])
    second = core.lease(1, est_tokens=100, est_cost=0.0, rate_tokens=10)
    assert second == pytest.approx([1.3])
    # over-estimates never pull the clock back (slots already granted would bunch up)
    core.settle([Settlement(100, 1, 0.0, 0.0, sent=True, paid=True, rate_tokens=10)])
    assert core.lease(1, est_tokens=100, est_cost=0.0, rate_tokens=10) == pytest.approx([1.4])
    assert core.usage().tokens == 41 and core.usage().calls == 2


def test_429_pauses_everyone_then_ramps_back():
    clock = FakeClock()
    core = LimiterCore(rpm=600, tpm=None, margin=0.0, horizon_s=0.5, clock=clock)
    core.lease(5, est_tokens=1, est_cost=0.0)
    core.rate_limited_by_server(2.0)
    delays = core.lease(1, est_tokens=1, est_cost=0.0)
    assert delays[0] >= 2.0 - 1e-9
    slowed = core.interval(1)
    assert slowed > 0.1  # slower than 600 RPM
    clock.now += 120
    assert core.interval(1) == pytest.approx(0.1)


def test_server_hint_adopts_tighter_limit_only():
    clock = FakeClock()
    core = LimiterCore(rpm=600, tpm=None, margin=0.0, horizon_s=0.5, clock=clock)
    core.server_hint(limit_requests=1200)
    assert core.rpm == 600
    core.server_hint(limit_requests=300, limit_tokens=5000)
    assert core.rpm == 300 and core.tpm == 5000


@pytest.mark.parametrize(
    ("caps", "est_tokens", "est_cost", "allowed"),
    [
        ({"max_calls": 7}, 10, 0.0, 7),
        ({"max_total_tokens": 95}, 10, 0.0, 9),
        ({"max_cost": 0.5}, 10, 0.1, 5),
    ],
)
def test_budget_caps_count_reservations(caps, est_tokens, est_cost, allowed):
    clock = FakeClock()
    core = LimiterCore(rpm=None, tpm=None, margin=0.0, horizon_s=1.0, clock=clock, **caps)
    granted = 0
    for _ in range(100):
        got = core.lease(1, est_tokens=est_tokens, est_cost=est_cost)
        if not got:  # the caps are held by reservations: ask again once some are settled
            break
        granted += len(got)
    assert granted == allowed
    # a refund of an unsent slot frees room for exactly one more call
    core.settle([Settlement(est_tokens, 0, est_cost, 0.0, sent=False, paid=False)])
    assert len(core.lease(5, est_tokens=est_tokens, est_cost=est_cost)) == 1
    assert core.lease(1, est_tokens=est_tokens, est_cost=est_cost) == []
    # once every reservation is paid for, the budget is spent: the run stops cleanly
    paid = Settlement(est_tokens, est_tokens, est_cost, est_cost, sent=True, paid=True)
    core.settle([paid] * allowed)
    with pytest.raises(BudgetExhaustedError, match="budget cap"):
        core.lease(1, est_tokens=est_tokens, est_cost=est_cost)


def test_fatal_error_stops_later_leases():
    core = LimiterCore(rpm=None, tpm=None, margin=0.0, horizon_s=1.0)
    err = BudgetExhaustedError("x", endpoint="e")
    core.set_fatal(err)
    with pytest.raises(BudgetExhaustedError):
        core.lease(1, est_tokens=1, est_cost=0)


def test_repeated_429s_cut_the_rate_harder_than_a_lone_one():
    clock = FakeClock()
    core = LimiterCore(rpm=600, tpm=None, margin=0.0, horizon_s=0.5, clock=clock)
    core.lease(1, est_tokens=1, est_cost=0.0)
    core.rate_limited_by_server(0.1)
    lone = core.rate_factor
    assert lone == pytest.approx(0.98)
    # another worker's 429 inside the pause, and one more from a slot leased before the
    # slowdown: one episode, one slowdown
    for at in (0.05, 0.3):
        clock.now = 1000.0 + at
        core.rate_limited_by_server(0.01)
    assert core.slowdowns == 1 and core.rate_factor == pytest.approx(lone, abs=0.02)
    # a new episode within 100 requests' time (10 s at 600 RPM) of the last: the limit is lower
    clock.now = 1000.0 + 0.75 + 2.0
    core.interval(1)  # brings the ramp-up since the first episode to now
    before = core.rate_factor
    core.rate_limited_by_server(0.01)
    assert core.rate_factor == pytest.approx(before * 0.85)
    assert core.usage().slowdowns == 2 and core.usage().rate_limited == 4


def test_many_429s_in_one_episode_cut_hard_at_once():
    clock = FakeClock()
    core = LimiterCore(rpm=600, tpm=None, margin=0.0, horizon_s=0.5, clock=clock)
    core.lease(1, est_tokens=1, est_cost=0.0)
    for i in range(3):  # three 429s 50 ms apart, each after the previous (1 ms) pause
        clock.now = 1000.0 + 0.05 * i
        core.rate_limited_by_server(0.001)
    assert core.slowdowns == 2
    assert core.rate_factor == pytest.approx(0.98 * 0.85, abs=0.01)


@pytest.mark.parametrize("rpm", [600, 10_000])
def test_sporadic_429s_cost_almost_no_throughput(rpm):
    """One 429 per 300 requests (0.33 %, jitter at a short server window): each is a lone
    episode, so the clock stays close to the limit instead of sawing down."""
    clock = FakeClock()
    core = LimiterCore(rpm=rpm, tpm=None, margin=0.0, horizon_s=0.5, clock=clock)
    sends: list[float] = []
    while len(sends) < 6000:
        delays = core.lease(10, est_tokens=1, est_cost=0.0)
        before = len(sends)
        sends.extend(clock.now + d for d in delays)
        clock.now = sends[-1]
        if len(sends) // 300 > before // 300:
            core.rate_limited_by_server(0.001)
    assert core.slowdowns >= 19
    assert core.slowdowns == core.rate_limited  # all lone episodes
    per_min = (len(sends) - 1) / (sends[-1] - sends[0]) * 60.0
    assert per_min >= 0.99 * rpm
