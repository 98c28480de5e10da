"""The worker side of the limiter: pacing, late slots, 429 pauses and bookings."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time

import pytest

from izero.blackbox.errors import BudgetExhaustedError
from izero.blackbox.ratelimit import CLOCK_DOMAIN, Grant, LeaseClient, LimiterCore, LocalLimiter


def _client(rpm: float, **core_kwargs) -> tuple[LeaseClient, LimiterCore]:
    core = LimiterCore(rpm=rpm, tpm=None, margin=0.0, horizon_s=0.2, **core_kwargs)
    return LeaseClient(LocalLimiter(core), horizon_s=0.2), core


def test_sends_are_paced_and_a_stalled_loop_does_not_burst():
    client, core = _client(rpm=1200)  # one slot every 50 ms
    sends: list[float] = []

    async def call():
        slot = await client.acquire(est_tokens=1, est_cost=0.0)
        sends.append(time.monotonic())
        client.release(slot, sent=True, paid=True, tokens=1)

    async def main():
        tasks = [asyncio.ensure_future(call()) for _ in range(12)]
        await asyncio.sleep(0.12)
        time.sleep(0.2)  # the event loop stalls: four slots pass meanwhile
        await asyncio.gather(*tasks)
        await client.close()

    asyncio.run(main())
    sends.sort()
    gaps = [b - a for a, b in itertools.pairwise(sends)]
    # late slots were voided instead of being sent together after the stall
    assert client.expired_slots >= 2
    assert min(gaps) >= 0.05 - client.late_tolerance_s - 0.002
    usage = core.usage()
    assert usage.calls == 12 and core.res_calls == 0  # every slot booked exactly once


def test_429_voids_only_slots_inside_the_pause():
    client, core = _client(rpm=600)  # 100 ms apart

    async def main():
        first = await client.acquire(est_tokens=1, est_cost=0.0)
        client.release(first, sent=True, paid=False)
        t0 = time.monotonic()
        await client.on_rate_limited(0.25)
        second = await client.acquire(est_tokens=1, est_cost=0.0)
        waited = time.monotonic() - t0
        client.release(second, sent=True, paid=True, tokens=1)
        await client.close()
        return waited

    waited = asyncio.run(main())
    assert waited >= 0.25 - 0.005  # nobody sends inside the pause
    assert waited < 1.0
    assert core.usage().rate_limited == 1 and core.res_calls == 0


class _SlowLimiter(LocalLimiter):
    """A limiter whose answers take ``there_s`` to arrive and ``back_s`` to come back, as across
    Ray processes, and that may say it lives on another host (``foreign``)."""

    def __init__(self, core, there_s: float, back_s: float, foreign: bool):
        super().__init__(core)
        self.there_s, self.back_s = there_s, back_s
        self.foreign = foreign
        self.grants: list[Grant] = []

    async def lease(self, *args, **kwargs):
        await asyncio.sleep(self.there_s)
        status, grant = await super().lease(*args, **kwargs)
        if self.foreign:
            grant = dataclasses.replace(grant, clock_domain="another-host")
        self.grants.append(grant)
        await asyncio.sleep(self.back_s)
        return status, grant


@pytest.mark.parametrize("foreign", [False, True])
def test_slots_are_placed_on_the_limiters_clock(foreign):
    """On one host a worker sends at the exact time the limiter granted, however slowly the
    answer came back; from another host it places the grant half a round trip back."""
    core = LimiterCore(rpm=120, tpm=None, margin=0.0, horizon_s=0.1)  # one slot per 0.5 s
    limiter = _SlowLimiter(core, there_s=0.01, back_s=0.07, foreign=foreign)
    client = LeaseClient(limiter, horizon_s=0.1, late_tolerance_s=1.0)
    sends: list[float] = []

    async def main():
        for _ in range(2):
            slot = await client.acquire(est_tokens=1, est_cost=0.0)
            sends.append(time.monotonic())
            client.release(slot, sent=True, paid=True, tokens=1)
        await client.close()

    asyncio.run(main())
    grant = limiter.grants[1]  # the first slot was due at once; the second 0.5 s later
    assert grant.clock_domain == ("another-host" if foreign else CLOCK_DOMAIN)
    due = grant.granted_at + grant.delays[0]
    assert grant.delays[0] > 0.3
    if CLOCK_DOMAIN is not None and not foreign:
        assert sends[1] - due == pytest.approx(0.0, abs=0.005)
    else:
        # midpoint of the round trip: 30 ms late here (placing it at the answer: 70 ms)
        assert sends[1] - due == pytest.approx(0.03, abs=0.01)


def test_budget_held_by_an_idle_worker_goes_to_a_busy_one():
    """Worker A leased the whole cap (5 calls) and then needed one; its unused slots are
    refunded once they pass, so worker B spends the rest, and only then is the cap reached."""
    core = LimiterCore(rpm=600, tpm=None, margin=0.0, horizon_s=0.5, max_calls=5)
    limiter = LocalLimiter(core)
    a = LeaseClient(limiter, horizon_s=0.5)
    b = LeaseClient(limiter, horizon_s=0.5)

    async def call(client):
        slot = await client.acquire(est_tokens=1, est_cost=0.0)
        client.release(slot, sent=True, paid=True, tokens=1)

    async def main():
        a._demand = 5  # as if five calls were waiting when it leased
        await a._refill(1, 0.0)
        a._demand = 0
        assert len(a._slots) == 5 and core.res_calls == 5
        await call(a)
        await asyncio.wait_for(asyncio.gather(*(call(b) for _ in range(4))), timeout=5)
        with pytest.raises(BudgetExhaustedError, match="max_calls=5"):
            await call(b)
        await a.close()
        await b.close()

    asyncio.run(main())
    assert core.usage().calls == 5 and core.res_calls == 0
