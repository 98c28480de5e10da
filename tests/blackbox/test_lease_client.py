"""The worker side of the limiter: pacing, late slots, 429 pauses and bookings."""

from __future__ import annotations

import asyncio
import itertools
import time

from izero.blackbox.ratelimit import LeaseClient, LimiterCore, LocalLimiter


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
