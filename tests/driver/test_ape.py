"""``ape`` end to end: an LLM proposes, the driver scores; proposer calls are rate limited,
cached, counted and capped like scoring calls.

The black box (and, where named, a separate proposer) is a simulated OpenAI-compatible server
that the test owns, so every request is counted at the server, over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from izero.blackbox import BudgetExhaustedError, SimulatedOptions, SimulatedServer
from izero.blackbox.simulated import max_in_window
from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.results import ResultsStore
from izero.tasks import load_task
from izero.tasks.builtin import BUILTIN_TASKS

TASKS = ["sum", "first_word_letter"]
BLACKBOX = "izero-sim"
PROPOSER = "izero-proposer"


def _server(model: str, **options) -> SimulatedServer:
    tasks = [load_task(t) for t in TASKS]
    server = SimulatedServer(
        tasks,
        keywords={t.name: BUILTIN_TASKS[t.name].keywords for t in tasks},
        options=SimulatedOptions(model=model, latency_s=0.01, **options),
    )
    server.start()
    return server


@pytest.fixture
def servers():
    started: list[SimulatedServer] = []

    def start(model: str = BLACKBOX, **options) -> SimulatedServer:
        started.append(_server(model, **options))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def _config(tmp_path, server: SimulatedServer, *, name="ape", tasks=TASKS, **sections):
    raw = {
        "name": name,
        "tasks": tasks,
        "seeds": [0],
        "methods": ["ape"],
        "budget": {"preset": "smoke"},
        "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 12},
        "blackbox": {
            "backend": "openai",
            "base_url": server.base_url,
            "model": BLACKBOX,
            "rpm": 1200,
            "concurrency": 16,
            "price_per_1k_prompt": 0.5,
            "price_per_1k_completion": 1.5,
            **sections.pop("blackbox", {}),
        },
        "output": {"path": str(tmp_path / name)},
        **sections,
    }
    return config_from_dict(raw)


def _paid(calls, purpose=None):
    return [
        c
        for c in calls
        if not c["cached"] and c["status"] == "ok" and purpose in (None, c["purpose"])
    ]


def test_ape_sweep_end_to_end_proposals_counted_and_rate_limited(ray_local, tmp_path, servers):
    server = servers(rpm=1200)
    cfg = _config(tmp_path, server)
    outcome = run_sweep(cfg)
    store = ResultsStore(outcome.uri)
    ev = store.read_evaluations().to_pylist()
    summaries = store.read_summaries().to_pylist()
    calls = store.read_calls().to_pylist()
    n = cfg.budget.n_evaluations
    stats = server.stats()

    assert store.is_finished() and len(summaries) == len(TASKS)
    for task in TASKS:
        rows = [r for r in ev if r["task"] == task]
        # one round of distinct proposals, scored like any instruction, named by the model
        assert 1 <= len(rows) <= n and {r["round"] for r in rows} == {0}
        assert len({r["instruction"] for r in rows}) == len(rows)
        assert all(r["duplicate_of"] is None and r["z"] is None for r in rows)
        assert all(r["generator_model"] == BLACKBOX and r["gen_started_at"] is None for r in rows)
        assert all(
            not r["instruction"].lower().startswith(("to ", "the instruction")) for r in rows
        )
        assert all("\n" not in r["instruction"] for r in rows)
        # one propose call per candidate asked for, recorded with its purpose
        proposed = [c for c in calls if c["task"] == task and c["purpose"] == "propose"]
        assert len(proposed) == n and all(not c["cached"] for c in proposed)
        assert all(c["cost_usd"] > 0 for c in proposed)
        summary = next(s for s in summaries if s["task"] == task)
        run_calls = [c for c in calls if c["task"] == task]
        # the run's totals include its proposals
        assert summary["total_calls"] == len(_paid(run_calls))
        assert math.isclose(summary["total_cost_usd"], sum(c["cost_usd"] for c in run_calls))
        assert summary["total_calls"] == n + sum(r["calls"] for r in rows) + summary["n_test"]
        assert summary["generator_model"] == BLACKBOX
        # the best proposal is on-task (the simulated black box rewards the task's words)
        words = {w.rstrip("s") for w in BUILTIN_TASKS[task].keywords}
        best = {w.rstrip("s").lower().strip(".,") for w in summary["best_instruction"].split()}
        assert words & best, summary["best_instruction"]
    assert all(c["purpose"] == "score" for c in calls if c["purpose"] != "propose")
    # The server saw each paid call once, proposals included, and never faster than the limit.
    paid = len(_paid(calls))
    assert stats["n_requests"] == paid and stats["by_status"] == {"200": paid}
    assert max_in_window(stats["times"], 1.0) <= cfg.blackbox.rpm / 60 * 1.05 + 1


def test_proposals_stopped_by_the_cap_are_paid_once_after_resume(ray_local, tmp_path, servers):
    """A cap inside the proposal batch stops the sweep before exceeding it; resumed, the sweep
    gets those proposals from the cache, pays only the rest, and (stopped again while scoring,
    then resumed) counts every recorded paid call in its totals."""
    server = servers()
    capped = _config(tmp_path, server, tasks=["sum"], blackbox={"max_calls": 7})
    with pytest.raises(BudgetExhaustedError, match="max_calls=7"):
        run_sweep(capped)
    assert server.stats()["n_requests"] == 7  # paid proposals, not one more
    store = ResultsStore(capped.output_path)
    assert store.read_evaluations().num_rows == 0 and not store.is_finished()

    n = capped.budget.n_evaluations
    with pytest.raises(BudgetExhaustedError, match="max_calls=20"):
        run_sweep(_config(tmp_path, server, tasks=["sum"], blackbox={"max_calls": 20}), resume=True)
    assert server.stats()["n_requests"] == 7 + 20  # the 7 proposals came from the cache
    run_sweep(_config(tmp_path, server, tasks=["sum"]), resume=True)

    ev = store.read_evaluations().to_pylist()
    calls = store.read_calls().to_pylist()
    proposed = [c for c in calls if c["purpose"] == "propose"]
    assert len(proposed) == n and sum(c["cached"] for c in proposed) == 7
    # every request went to the server exactly once over the three attempts
    distinct = len({r["instruction"] for r in ev})
    assert server.stats()["n_requests"] == n + 5 * distinct + capped.budget.n_test
    # the totals count every paid call the results hold, proposals of earlier attempts too
    (summary,) = store.read_summaries().to_pylist()
    assert summary["total_calls"] == len(_paid(calls))
    assert summary["total_calls"] >= len(_paid(calls, "propose")) == n - 7


def test_separate_proposer_gets_the_proposals_under_its_own_limit_and_cap(
    ray_local, tmp_path, servers, monkeypatch, caplog
):
    key = "sk-proposer-0123456789-never-written"
    monkeypatch.setenv("IZERO_TEST_PROPOSER_KEY", key)
    blackbox = servers()
    proposer = servers(PROPOSER, api_key=key)  # refuses calls without the proposer's key
    section = {
        "base_url": proposer.base_url,
        "model": PROPOSER,
        "rpm": 300,
        "api_key_env": "IZERO_TEST_PROPOSER_KEY",
    }
    cfg = _config(tmp_path, blackbox, proposer=section)
    with caplog.at_level("DEBUG"):
        run_sweep(cfg)
    assert key not in caplog.text
    for f in (tmp_path / "ape").rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f
    store = ResultsStore(cfg.output_path)
    ev = store.read_evaluations().to_pylist()
    calls = store.read_calls().to_pylist()
    n = cfg.budget.n_evaluations
    # the proposer answered every proposal and nothing else; the black box only scored
    assert proposer.stats()["n_requests"] == len(_paid(calls, "propose")) == n * len(TASKS)
    assert blackbox.stats()["n_requests"] == len(_paid(calls, "score"))
    times = proposer.stats()["times"]
    assert max_in_window(times, 1.0) <= 300 / 60 * 1.05 + 1  # its own limit: 5 per second
    assert all(r["generator_model"] == PROPOSER and r["blackbox_model"] == BLACKBOX for r in ev)
    summaries = store.read_summaries().to_pylist()
    assert {s["generator_model"] for s in summaries} == {PROPOSER}

    # The proposer's own max_cost stops the sweep before the proposer spends more than it.
    priced = {**section, "price_per_1k_prompt": 1.0, "price_per_1k_completion": 1.0}
    priced["max_cost"] = 0.9
    before = proposer.stats()["tokens"]
    capped = _config(tmp_path, blackbox, name="capped", tasks=["sum"], proposer=priced)
    with pytest.raises(BudgetExhaustedError, match=r"max_cost=0\.9"):
        run_sweep(capped)
    spent = (proposer.stats()["tokens"] - before) / 1000  # $1 per 1000 tokens
    assert 0 < spent <= 0.9


@pytest.mark.slow
def test_driver_killed_while_proposing_resumes_without_paying_twice(ray_local, tmp_path, servers):
    """``izero sweep`` is SIGKILLed while its proposal calls are on their way; the resumed
    sweep writes the same rows as an uninterrupted one, and only calls in flight at the kill
    can reach the server twice."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import yaml

    concurrency = 4
    server = servers()

    def config(name: str) -> Path:
        raw = {
            "name": name,
            "tasks": ["sum"],
            "methods": ["ape"],
            "budget": {"preset": "smoke"},
            "blackbox": {
                "backend": "openai",
                "base_url": server.base_url,
                "model": BLACKBOX,
                "rpm": 300,  # 5 proposals a second: time to kill the driver among them
                "concurrency": concurrency,
            },
            "output": {"path": str(tmp_path / name)},
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    def sweep(path: Path, *extra: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "izero", "sweep", "--config", str(path), "--no-report"]
        return subprocess.Popen(
            [*cmd, *extra],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # killing its group takes its Ray processes too
        )

    def rows(name: str) -> list[str]:
        table = ResultsStore(str(tmp_path / name)).read_evaluations().to_pylist()
        keep = ("eval_index", "instruction", "dev_score", "score_vector", "generator_model")
        return sorted(json.dumps([r[k] for k in keep]) for r in table)

    from izero.config import load_config

    run_sweep(load_config(config("ref")))  # the uninterrupted reference, in this process
    n_ref = server.stats()["n_requests"]

    killed = sweep(config("killed"))
    deadline = time.time() + 240
    while server.stats()["n_requests"] < n_ref + 4 and time.time() < deadline:
        time.sleep(0.01)
    assert killed.poll() is None, "the sweep finished before it could be killed"
    os.killpg(killed.pid, signal.SIGKILL)
    killed.communicate(timeout=60)
    store = ResultsStore(str(tmp_path / "killed"))
    assert not store.is_finished() and store.read_evaluations().num_rows == 0

    resumed = sweep(config("killed"), "--resume")
    out, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, out
    n_both = server.stats()["n_requests"] - n_ref
    assert rows("killed") == rows("ref")
    assert n_ref <= n_both <= n_ref + concurrency
    proposed = store.read_calls(filter=None).to_pylist()
    assert sum(c["purpose"] == "propose" and c["cached"] for c in proposed) >= 4
