"""Runs of different seeds that score the same instruction at the same moment pay each request
once.

Seeds split a task's examples differently, so the dev (and test) examples of one seed are partly
another's: the ``manual`` baseline scores the same human instructions for every seed at once,
and so, often, do methods whose generated instructions coincide. The scorings are not identical
(they cannot be joined), but they share requests; the second one waits for the first and gets
the shared answers from the response cache. Counted at a server this test owns.
"""

from __future__ import annotations

from izero.blackbox.simulated import SimulatedOptions
from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.results import ResultsStore
from izero.tasks import load_task

from .servers import CountingServer, paid_twice

KEY = "sk-paid-once-test-key-0123"
VAR = "IZERO_PAID_ONCE_TEST_KEY"


def test_seeds_sharing_requests_pay_each_once(ray_local, tmp_path, monkeypatch):
    monkeypatch.setenv(VAR, KEY)
    server = CountingServer(
        [load_task("sum")], options=SimulatedOptions(api_key=KEY, latency_s=0.2, seed=0)
    )
    server.start()
    config = config_from_dict(
        {
            "name": "paid-once",
            "tasks": ["sum"],
            "seeds": [0, 1, 2, 3],
            "methods": ["manual"],
            "budget": {"preset": "smoke"},
            "blackbox": {
                "backend": "openai",
                "base_url": server.base_url,
                "model": "izero-sim",
                "api_key_env": VAR,
                "rpm": 6000,
                "concurrency": 64,
            },
            "output": {"path": str(tmp_path / "sweep")},
        }
    )
    try:
        run_sweep(config)
    finally:
        server.stop()
    answered = server.answered()
    assert paid_twice(answered) == 0
    calls = ResultsStore(config.output_path).read_calls().to_pylist()
    # the seeds did share requests (else this test shows nothing): those came from the cache
    assert sum(c["cached"] for c in calls) > 0
    assert sum(not c["cached"] and c["status"] == "ok" for c in calls) == len(answered)
