"""An outage of the endpoint mid-sweep: held, shown, given up on after the allowance, resumed.

A real sweep (local Ray, tiny generator) against a simulated endpoint this test owns, over real
sockets. The endpoint goes away twice: once for a few seconds (the sweep holds its calls, shows
the outage and goes on), then for good (the sweep stops after the outage allowance with one
line). The endpoint comes back and the resumed sweep finishes: no evaluation was recorded with
an unanswered example and no request was answered twice.
"""

from __future__ import annotations

import threading
import time

import pytest

from izero.blackbox.health import EndpointUnavailableError
from izero.blackbox.simulated import SimulatedOptions
from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.results import ResultsStore
from izero.tasks import load_task

from .servers import CountingServer, paid_twice

pytestmark = pytest.mark.slow

KEY = "sk-outage-test-key-0123"
VAR = "IZERO_OUTAGE_TEST_KEY"
ALLOWANCE_S = 6.0


def _config(base_url: str, out) -> object:
    return config_from_dict(
        {
            "name": "outage",
            "tasks": ["sum"],
            "seeds": [0],
            "methods": ["instructzero"],
            "budget": {"preset": "smoke", "n_rounds": 3},
            "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 12},
            "blackbox": {
                "backend": "openai",
                "base_url": base_url,
                "model": "izero-sim",
                "api_key_env": VAR,
                "rpm": 600,  # 10 per second: rounds take long enough to be caught mid-way
                "concurrency": 4,
                "timeout_s": 5.0,
                "outage_allowance_s": ALLOWANCE_S,
            },
            "output": {"path": str(out)},
        }
    )


def test_an_outage_is_held_then_given_up_and_the_resume_finishes(ray_local, tmp_path, monkeypatch):
    monkeypatch.setenv(VAR, KEY)
    server = CountingServer(
        [load_task("sum")], options=SimulatedOptions(api_key=KEY, latency_s=0.02, seed=0)
    )
    server.start()
    cfg = _config(server.base_url, tmp_path / "sweep")
    events: dict[str, float] = {}
    done = threading.Event()

    def wait_answers(n: int) -> bool:
        while len(server.answered()) < n:
            if done.wait(0.02):
                return False
        return True

    def outages() -> None:
        if not wait_answers(12):
            return
        server.stop()  # down for 4 s: longer than the trip (1 s), shorter than the allowance
        events["first_down"] = time.time()
        time.sleep(4.0)
        server.restart()
        events["back"] = time.time()
        if not wait_answers(len(server.answered()) + 24):
            return
        server.stop()  # down for good
        events["second_down"] = time.time()

    lines: list[str] = []
    thread = threading.Thread(target=outages, daemon=True)
    thread.start()
    try:
        with pytest.raises(EndpointUnavailableError) as info:
            run_sweep(cfg, on_progress=lambda p: lines.append(p.line()))
        stopped = time.time()
        done.set()
        thread.join(30)
        first = ResultsStore(cfg.output_path).read_evaluations().to_pylist()
        # the endpoint is back: the resumed sweep finishes what was left
        server.restart()
        run_sweep(cfg, resume=True)
        rows = ResultsStore(cfg.output_path).read_evaluations().to_pylist()
    finally:
        done.set()
        server.stop()

    # the first outage was held (and shown), the second given up on after the allowance
    held = [line for line in lines if line.startswith("OUTAGE")]
    assert held
    assert any("calls held" in line and "giving up in" in line for line in held)
    assert set(events) == {"first_down", "back", "second_down"}, events
    assert stopped - events["second_down"] >= ALLOWANCE_S
    message = str(info.value)
    assert "\n" not in message and "127.0.0.1" in message and "Fix:" in message
    assert "connection errors" in message and "outage_allowance_s" in message
    assert KEY not in message
    # unanswered work was never recorded as finished, before or after the resume
    assert first and all(r["n_failed"] == 0 for r in first)
    budget = cfg.budget.n_init + cfg.budget.n_rounds * cfg.budget.q
    assert sorted(r["eval_index"] for r in rows) == list(range(budget))
    assert all(r["n_failed"] == 0 and r["dev_score"] is not None for r in rows)
    summary = ResultsStore(cfg.output_path).read_summaries().to_pylist()
    assert len(summary) == 1 and summary[0]["test_score"] is not None
    # and nothing was paid twice: in-flight answers landed in the cache at the stop
    assert paid_twice(server.answered()) == 0
