"""Token-bound limits: the TPM clock is charged the mean call and settles the difference; a limit
the server never states is learned from 429s and then held."""

from __future__ import annotations

import asyncio
import random

import pytest

from izero.blackbox.ratelimit import (
    PROBE_FROM,
    LeaseClient,
    LimiterCore,
    LocalLimiter,
    Settlement,
)
from izero.blackbox.simulated import max_in_window


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_unused_tokens_offset_later_overruns_but_never_pull_the_clock_back():
    clock = FakeClock()
    core = LimiterCore(rpm=None, tpm=6000, margin=0.0, horizon_s=1.0, clock=clock)  # 100/s
    assert core.lease(1, est_tokens=50, est_cost=0.0, rate_tokens=10) == [0.0]  # next: +0.1 s
    # 8 tokens unused: a credit, the clock stays where it is
    core.settle([Settlement(50, 2, 0.0, 0.0, sent=True, paid=True, rate_tokens=10)])
    assert core.lease(1, est_tokens=50, est_cost=0.0, rate_tokens=10) == pytest.approx([0.1])
    # 13 tokens over: 8 of them were credit, the other 5 move the clock 0.05 s later
    core.settle([Settlement(50, 23, 0.0, 0.0, sent=True, paid=True, rate_tokens=10)])
    assert core.lease(1, est_tokens=50, est_cost=0.0, rate_tokens=10) == pytest.approx([0.25])
    # credit is capped at one horizon's tokens (100): a huge over-charge saves up no burst
    core.settle([Settlement(50, 0, 0.0, 0.0, sent=True, paid=True, rate_tokens=1000)])
    core.settle([Settlement(50, 300, 0.0, 0.0, sent=True, paid=True, rate_tokens=0)])
    assert core.lease(1, est_tokens=50, est_cost=0.0, rate_tokens=10) == pytest.approx([0.35 + 2.0])


def test_each_call_is_charged_its_own_expected_tokens_at_once():
    """Slots are leased for the asking call, then taken by calls of other sizes: each call's
    expected tokens (its estimate times the used/estimated ratio seen so far) replace the slot's
    charge when it is taken, so what the clock was charged follows what calls use."""
    core = LimiterCore(rpm=None, tpm=6_000_000, margin=0.0, horizon_s=0.05)
    booked: list[Settlement] = []
    settle = core.settle

    def record(settlements):
        booked.extend(settlements)
        settle(settlements)

    core.settle = record
    client = LeaseClient(LocalLimiter(core), horizon_s=0.05)
    rng = random.Random(0)
    estimates = [rng.choice([40, 80, 400]) for _ in range(300)]  # upper bounds, used half

    async def call(est: int) -> None:
        slot = await client.acquire(est_tokens=est, est_cost=0.0)
        await asyncio.sleep(0.01)  # the request on its way
        client.release(slot, sent=True, paid=True, tokens=est / 2)

    async def main():
        for i in range(0, len(estimates), 30):  # 30 calls at once: one lease serves several
            await asyncio.gather(*(call(est) for est in estimates[i : i + 30]))
        await client.close()

    asyncio.run(main())
    used = sum(estimates) / 2
    paid = [s for s in booked if s.paid]
    adjusted = [s for s in booked if s.adjust]
    charged = sum(s.rate_tokens for s in paid)
    assert len(paid) == 300 and adjusted  # calls larger or smaller than their slot's charge
    assert abs(charged - used) <= 0.05 * used  # the clock was charged about what was used
    assert core.res_calls == 0 and core.usage().tokens == pytest.approx(used)


def _learn(core: LimiterCore, clock: FakeClock, *, true_rpm: float, seconds: float):
    """Requests at the granted slots against a server allowing ``true_rpm`` per 1-s window and
    saying nothing about it; returns (times sent, number of 429s)."""
    per_window = true_rpm / 60.0
    sent: list[float] = []
    accepted: list[float] = []
    n_429 = 0
    while clock.now < 1000.0 + seconds:
        for delay in core.lease(100, est_tokens=1, est_cost=0.0):
            t = clock.now + delay
            if t < core.paused_until:
                continue
            sent.append(t)
            if max_in_window([*accepted[-int(per_window) - 1 :], t], 1.0) > per_window:
                n_429 += 1
                clock.now = max(clock.now, t)
                core.rate_limited_by_server(0.05)
                break
            accepted.append(t)
        clock.now = max(clock.now + 0.01, (sent[-1] if sent else clock.now) - core.horizon_s)
    return accepted, n_429


def test_a_limit_never_stated_is_learned_from_429s_and_held():
    """Told 1,500 RPM, the server allows 1,200 (20 per second) and sends no headers: after a
    short learning phase the clock holds just under the true limit, with 429s rare."""
    clock = FakeClock()
    core = LimiterCore(rpm=1500, tpm=None, margin=0.02, horizon_s=0.5, clock=clock)
    accepted, n_429 = _learn(core, clock, true_rpm=1200, seconds=300)
    assert core.ceiling is not None and core.ceiling * 1500 == pytest.approx(1200, rel=0.05)
    steady = [t for t in accepted if t > 1060.0]
    per_min = (len(steady) - 1) / (steady[-1] - steady[0]) * 60.0
    assert per_min >= 0.95 * 1200
    assert n_429 / len(accepted) <= 0.01
    # probing above the learned limit is slow: just under it, the factor creeps
    core.interval(1)  # the factor, now
    before = core.rate_factor
    core.ceiling = before / PROBE_FROM
    clock.now += 10.0
    assert core.interval(1) == pytest.approx(60.0 / (1500 * 0.98 * (before + 0.01)), rel=1e-6)
