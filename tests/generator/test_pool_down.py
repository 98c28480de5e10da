"""A pool routes around an actor Ray is restarting, and uses it again once it is back."""

from __future__ import annotations

import asyncio
import time

from izero.generator import GenerationRequest, GeneratorPool, InstructionGenerator

from .conftest import DEMOS_A, DEMOS_B, z_point

SLOW = {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 200, "eos_token_id": None}


def _requests(n: int, offset: int = 0) -> list[GenerationRequest]:
    return [
        GenerationRequest(demos=(DEMOS_A, DEMOS_B)[k % 2], z=z_point(k + offset)) for k in range(n)
    ]


def test_calls_avoid_a_restarting_actor_until_it_is_back(ray_local) -> None:
    ray = ray_local
    first, during, after = _requests(4), _requests(4, 10), _requests(4, 20)
    want = InstructionGenerator(**SLOW).generate(first + during + after)
    pool = GeneratorPool(num_actors=2, max_restarts=2, max_retries=2, batch_window_s=0, **SLOW)
    try:
        pool.wait_ready(timeout_s=180)
        lost, other = pool.actors

        async def scenario():
            call = asyncio.ensure_future(pool.generate(first))  # a shard on each actor
            deadline = time.monotonic() + 60
            while not (await lost.stats.remote())["busy"]:
                assert time.monotonic() < deadline, "the shard never started"
                await asyncio.sleep(0.01)
            ray.kill(lost, no_restart=False)  # its process dies mid-batch; Ray restarts it
            got_first = await call  # its shard was redone on the other actor
            assert 0 in pool._down
            served_before = (await other.stats.remote())["requests"]
            got_during = await pool.generate(during)  # all on the other actor
            served_during = (await other.stats.remote())["requests"] - served_before
            while 0 in pool._down:  # the pool watches the restart
                assert time.monotonic() < deadline + 120, "the actor never came back"
                await asyncio.sleep(0.1)
            got_after = await pool.generate(after)  # split over both again
            return got_first + got_during + got_after, served_during

        got, served_during = asyncio.run(scenario())
        assert got == want
        assert served_during == len(during)
        assert pool.retries == 1
        assert ray.get(lost.stats.remote())["requests"] == 2  # its half of the last call
    finally:
        pool.shutdown()
