"""A task's metric travels to the Ray scoring workers; a failing metric comes back as itself."""

from __future__ import annotations

import asyncio

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.pool import ScoringPool
from izero.tasks.metrics import MetricError, MetricSpec

from .conftest import MODEL, SECRET_KEY


def test_plugin_metrics_and_extraction_run_in_the_workers(ray_local, make_server, sum_task):
    server = make_server(latency_s=0.0)
    config = EndpointConfig(base_url=server.base_url, model=MODEL, api_key=SECRET_KEY, rpm=6000)
    examples = sum_task.induce[:6]
    pool = ScoringPool(config, num_workers=1)
    try:
        plain = asyncio.run(pool.score("Add the two numbers", examples, "exact_match"))
        spec = MetricSpec("tests.tasks.plugin_metrics:recording", "last_number")
        plugin = asyncio.run(pool.score("Add the two numbers", examples, spec))
        # the plug-in (an exact match on the extracted number) ran in the worker process
        assert plugin.scores == plain.scores and plugin.n_answered == 6
        assert 0 < plain.mean < 1
        broken = MetricSpec("tests.tasks.plugin_metrics:broken")
        with pytest.raises(MetricError) as info:
            asyncio.run(pool.score("Add the two numbers", examples, broken))
    finally:
        pool.close()
    msg = str(info.value)
    assert "tests.tasks.plugin_metrics:broken" in msg and "ZeroDivisionError" in msg
    assert "example 1 of 6" in msg and repr(examples[0].input) in msg
