"""The Ray scoring pool: worker processes sharing one limit, budget and cache."""

from __future__ import annotations

import asyncio

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.errors import AuthenticationError, BudgetExhaustedError
from izero.blackbox.pool import ScoringPool
from izero.blackbox.simulated import max_in_window

from .conftest import MODEL, SECRET_KEY, exact_scorer

INSTRUCTIONS = ["Add the two numbers", "Sum the numbers", "Reverse the input", "Say hello"]


def _config(server, **overrides) -> EndpointConfig:
    options = {
        "base_url": server.base_url,
        "model": MODEL,
        "api_key": SECRET_KEY,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
    }
    options.update(overrides)
    return EndpointConfig(**options)


def test_limit_holds_across_two_worker_processes(ray_local, make_server, sum_task, tmp_path):
    # 600 RPM enforced as 20 per 2 seconds; two processes must share it (a 2 s window leaves
    # room for the timing noise of a loaded 2-core machine)
    server = make_server(rpm=600, window_s=2.0, latency_s=0.05)
    examples = sum_task.induce[:15]
    pool = ScoringPool(
        _config(server, rpm=600, rate_margin=0.05),
        num_workers=2,
        cache_dir=tmp_path,
        scorer=exact_scorer,
    )
    try:
        results = asyncio.run(pool.score_many(INSTRUCTIONS, examples, "exact_match"))
        workers = pool.worker_stats()
        usage = pool.usage()
    finally:
        pool.close()
    assert [r.instruction for r in results] == INSTRUCTIONS
    assert all(r.n_answered == 15 and r.calls == 15 for r in results)
    assert results[0].mean > results[3].mean
    stats = server.stats()
    assert stats["n_requests"] == 60 and stats["by_status"] == {"200": 60}
    assert max_in_window(stats["times"], 2.0) <= 20
    assert max_in_window(stats["times"], 60.0) <= 600
    assert all(w["calls"] > 0 for w in workers)  # both processes did calls
    assert sum(w["calls"] for w in workers) == 60
    assert usage.calls == 60 and usage.rate_limited == 0


def test_shared_cache_across_processes_pays_once(ray_local, make_server, sum_task, tmp_path):
    server = make_server()
    examples = sum_task.induce[:10]
    config = _config(server)
    for _ in range(2):  # a second pool is a resumed run
        pool = ScoringPool(config, num_workers=2, cache_dir=tmp_path, scorer=exact_scorer)
        try:
            results = asyncio.run(pool.score_many(INSTRUCTIONS[:2] * 2, examples, "exact_match"))
        finally:
            pool.close()
        assert results[0].scores == results[2].scores
    # 2 distinct instructions x 10 examples, paid once overall
    assert server.stats()["n_requests"] == 20


def test_budget_cap_holds_across_processes(ray_local, make_server, sum_task):
    server = make_server(latency_s=0.05)
    pool = ScoringPool(_config(server, max_calls=12), num_workers=2, scorer=exact_scorer)
    try:
        with pytest.raises(BudgetExhaustedError, match="max_calls=12"):
            asyncio.run(pool.score_many(INSTRUCTIONS, sum_task.induce[:10], "exact_match"))
        assert pool.usage().calls <= 12
    finally:
        pool.close()
    assert 1 <= server.stats()["by_status"].get("200", 0) <= 12


def test_pool_401_names_endpoint_not_key(ray_local, make_server, sum_task):
    server = make_server(api_key="another-key")
    pool = ScoringPool(_config(server, rpm=600), num_workers=2, scorer=exact_scorer)
    try:
        with pytest.raises(AuthenticationError) as info:
            asyncio.run(pool.score_many(INSTRUCTIONS, sum_task.induce[:10], "exact_match"))
    finally:
        pool.close()
    assert server.base_url in str(info.value) and "OPENAI_API_KEY" in str(info.value)
    assert SECRET_KEY not in str(info.value)
    assert server.stats()["n_requests"] <= 4
