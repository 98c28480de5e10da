"""Closing a scoring pool mid-flight (a stopped sweep) loses nothing that was paid for."""

from __future__ import annotations

import asyncio
import contextlib

from izero.blackbox.config import EndpointConfig
from izero.blackbox.pool import ScoringPool

from .conftest import MODEL, SECRET_KEY, exact_scorer


def test_requests_sent_before_close_are_cached_not_repaid(
    ray_local, make_server, sum_task, tmp_path
):
    server = make_server(latency_s=0.6)
    config = EndpointConfig(
        base_url=server.base_url, model=MODEL, api_key=SECRET_KEY, rpm=600, concurrency=8
    )
    instructions = [f"Add the two numbers ({i})" for i in range(4)]
    examples = sum_task.induce[:10]

    pool = ScoringPool(config, num_workers=2, cache_dir=tmp_path, scorer=exact_scorer)

    async def stop_midway():
        scoring = asyncio.ensure_future(pool.score_many(instructions, examples, "exact_match"))
        while server.stats()["n_requests"] < 6:
            await asyncio.sleep(0.02)
        scoring.cancel()  # the sweep stops (Ctrl-C, SIGTERM, ray job stop)
        with contextlib.suppress(asyncio.CancelledError):
            await scoring

    asyncio.run(stop_midway())
    pool.close()  # stops sending; waits for the requests already sent
    first = server.stats()
    assert 6 <= first["n_requests"] < 40  # stopped midway
    assert first["by_status"] == {"200": first["n_requests"]}  # each one answered

    again = ScoringPool(config, num_workers=2, cache_dir=tmp_path, scorer=exact_scorer)
    try:
        results = asyncio.run(again.score_many(instructions, examples, "exact_match"))
    finally:
        again.close()
    assert all(r.n_answered == 10 for r in results)
    keys = server.stats()["ok_keys"]
    assert len(keys) == 40 and len(set(keys)) == 40  # every request paid exactly once
    assert sum(r.cache_hits for r in results) == first["by_status"]["200"]
