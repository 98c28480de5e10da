"""Unanswered examples are asked again before an evaluation is recorded (real sockets)."""

from __future__ import annotations

import asyncio

from izero.blackbox.config import EndpointConfig
from izero.blackbox.pool import EndpointScorer
from izero.blackbox.simulated import SimulatedOptions, SimulatedServer
from izero.driver.reask import score_answered
from izero.tasks import load_task

KEY = "sk-reask-test-key"
GOOD = "Add the two numbers"


def _score(server: SimulatedServer, cache_dir, examples, waits):
    config = EndpointConfig(
        base_url=server.base_url,
        model="izero-sim",
        api_key=KEY,
        max_retries=0,  # a fault fails its call at once: only the re-ask can answer it
        concurrency=1,
    )

    async def go():
        scorer = EndpointScorer(config, cache_dir=cache_dir, seed=0)
        try:
            return await score_answered(
                lambda: scorer.score(GOOD, examples, "exact_match"), waits=waits
            )
        finally:
            await scorer.close()

    return asyncio.run(go())


def _server(**options) -> SimulatedServer:
    server = SimulatedServer(
        [load_task("sum")], options=SimulatedOptions(api_key=KEY, latency_s=0.0, **options)
    )
    server.start()
    return server


def test_failed_examples_are_asked_again_and_answered_ones_not_repaid(tmp_path):
    examples = load_task("sum").induce[:6]
    server = _server(fault_script=("ok", "503", "ok", "drop"))
    try:
        result = _score(server, tmp_path, examples, waits=(0.01, 0.01))
        stats = server.stats()
    finally:
        server.stop()
    assert result.n_failed == 0 and result.n_answered == 6 and result.mean is not None
    # six answers paid once each, plus the two faulty attempts: the re-ask took the four
    # answered examples from the cache
    assert stats["n_requests"] == 8 and stats["by_status"]["200"] == 6
    assert result.calls == 6 and result.cache_hits == 0
    statuses = [r.attempt_statuses for r in result.call_records]
    assert statuses == [("200",), ("503", "200"), ("200",), ("connection", "200")] + [("200",)] * 2
    assert result.prompt_tokens == sum(r.prompt_tokens for r in result.call_records)


def test_an_example_never_answered_is_failed_not_wrong(tmp_path):
    examples = load_task("sum").induce[:3]
    server = _server(fault_rates={"503": 1.0})
    try:
        result = _score(server, tmp_path, examples, waits=(0.01, 0.01))
        stats = server.stats()
    finally:
        server.stop()
    assert result.scores == (None, None, None) and result.mean is None
    assert stats["n_requests"] == 9  # three tries, nothing more
    assert all(r.attempts == 3 and not r.ok for r in result.call_records)
