"""End-to-end sweeps on the offline default: real Ray, tiny generator, simulated black box."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.driver.backends import Backends
from izero.errors import ResultsError
from izero.results import ResultsStore

TASKS = ["sum", "first_word_letter"]


def smoke_config(tmp_path, **extra):
    raw = {
        "name": "smoke",
        "tasks": TASKS,
        "seeds": [0],
        "methods": ["instructzero", "random", "sampling", "manual"],
        "budget": {"preset": "smoke"},
        "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 12},
        "blackbox": {"backend": "simulated", "rpm": 6000, "concurrency": 16},
        "output": {"path": str(tmp_path / "sweep")},
    }
    for key, value in extra.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return config_from_dict(raw)


def test_offline_sweep_writes_every_row(ray_local, tmp_path):
    cfg = smoke_config(tmp_path)
    outcome = run_sweep(cfg)
    store = ResultsStore(outcome.uri)
    ev = store.read_evaluations().to_pylist()
    summaries = store.read_summaries().to_pylist()
    budget = cfg.budget.n_init + cfg.budget.n_rounds * cfg.budget.q

    assert store.is_finished()
    assert len(summaries) == len(TASKS) * 4
    # the finished sweep was compacted: one file per task and table, not one per round
    root = Path(outcome.uri)
    for table in ("evaluations", "summaries", "calls"):
        files = sorted(p.relative_to(root / table) for p in (root / table).rglob("*.parquet"))
        assert [f.parent.name for f in files] == [f"task={t}" for t in sorted(TASKS)], files
    for task in TASKS:
        for method in ("instructzero", "random", "sampling"):
            rows = [r for r in ev if r["task"] == task and r["method"] == method]
            assert sorted(r["eval_index"] for r in rows) == list(range(budget))
            assert {r["round"] for r in rows} == (
                {0} if method == "sampling" else set(range(cfg.budget.n_rounds + 1))
            )
            # every generated instruction names the generator; texts (manual) do not
            assert all(r["generator_model"] == "tiny:llama" for r in rows)
            assert all(r["gen_started_at"] is not None for r in rows)
            if method != "sampling":
                assert all(len(r["z"]) == cfg.generator.intrinsic_dim for r in rows)
                assert all(-1.0 <= v <= 1.0 for r in rows for v in r["z"])
        manual = [r for r in ev if r["task"] == task and r["method"] == "manual"]
        assert manual and all(r["z"] is None for r in manual)
        assert all(r["generator_model"] is None and r["gen_started_at"] is None for r in manual)
    for s in summaries:
        assert s["best_instruction"]
        assert s["n_test"] == cfg.budget.n_test
        assert 0.0 <= s["test_score"] <= 1.0
    # Identical instructions are scored once: duplicates cost no calls and point at the first.
    for r in ev:
        if r["duplicate_of"] is not None:
            assert r["calls"] == 0 and r["duplicate_of"] < r["eval_index"]
    # Runs of one task and seed share their dev split: an instruction both of them evaluate
    # (instructzero and random share their Sobol start) is paid for once in the whole sweep.
    paid: dict[tuple, int] = {}
    for r in ev:
        if r["calls"]:
            paid[(r["task"], r["seed"], r["instruction"])] = (
                paid.get((r["task"], r["seed"], r["instruction"]), 0) + 1
            )
    assert paid and max(paid.values()) == 1
    # The calls table holds one row per paid or cached call of the sweep.
    calls = store.read_calls()
    assert calls.num_rows == sum(
        r["n_answered"] + r["n_failed"] for r in ev if r["duplicate_of"] is None
    ) + sum(s["n_test"] for s in summaries)
    # Requests went out at the configured rate limit, never above it (6000/min = 100/s).
    sent = sorted(r["started_at"].timestamp() for r in calls.to_pylist() if not r["cached"])
    per_second = cfg.blackbox.rpm / 60
    busiest = max(sum(1 for t in sent[i:] if t - t0 < 1.0) for i, t0 in enumerate(sent))
    assert busiest <= per_second * 1.05 + 1, busiest
    # The manual baseline scores the human annotations of built-in tasks.
    from izero.tasks import load_task

    for task in TASKS:
        best_manual = next(s for s in summaries if s["task"] == task and s["method"] == "manual")
        assert best_manual["best_instruction"] in load_task(task).annotations

    # The same command again without resume refuses to touch the finished sweep.
    with pytest.raises(ResultsError, match="use --resume"):
        run_sweep(cfg)
    # With resume, a finished sweep is left as it is and costs nothing.
    again = run_sweep(cfg, resume=True)
    assert again.progress.calls == 0
    assert ResultsStore(again.uri).read_evaluations().num_rows == len(ev)


def test_sweep_with_a_local_hf_model_as_the_black_box(ray_local, tmp_path):
    """Backend ``hf``: a (tiny, random) Hugging Face model in a Ray actor answers the queries;
    every call is recorded and paid for once."""
    cfg = smoke_config(
        tmp_path,
        tasks=["sum"],
        methods=["instructzero", "manual"],
        blackbox={"backend": "hf", "model": "tiny:qwen2", "max_tokens": 6, "rpm": None},
    )
    outcome = run_sweep(cfg)
    store = ResultsStore(outcome.uri)
    summaries = store.read_summaries().to_pylist()
    ev = store.read_evaluations().to_pylist()
    calls = store.read_calls().to_pylist()
    assert store.is_finished() and len(summaries) == 2
    assert {s["blackbox_model"] for s in summaries} == {"tiny:qwen2"}
    assert all(s["n_test"] == cfg.budget.n_test for s in summaries)
    assert all(r["n_failed"] == 0 for r in ev)
    assert calls and all(c["status"] == "ok" for c in calls)
    assert all(0 < c["completion_tokens"] <= 6 for c in calls if not c["cached"])
    assert outcome.progress.calls == sum(1 for c in calls if not c["cached"])


def test_generator_actor_killed_mid_sweep_loses_nothing(ray_local, tmp_path):
    import ray

    cfg = smoke_config(
        tmp_path, methods=["instructzero"], tasks=["sum"], budget={"preset": "smoke", "n_rounds": 3}
    )
    built: list[Backends] = []

    def factory(**kwargs):
        backends = Backends(**kwargs)
        built.append(backends)
        return backends

    def killer():
        deadline = time.time() + 120
        while time.time() < deadline:
            if built and built[0].generator.in_flight > 0:
                ray.kill(built[0].generator.actors[0], no_restart=False)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    outcome = run_sweep(cfg, backends_factory=factory)
    thread.join()
    ev = ResultsStore(outcome.uri).read_evaluations().to_pylist()
    budget = cfg.budget.n_init + cfg.budget.n_rounds * cfg.budget.q
    assert sorted(r["eval_index"] for r in ev) == list(range(budget))


def test_budget_cap_stops_the_sweep_cleanly_and_resume_finishes_it(ray_local, tmp_path):
    from izero.blackbox import BudgetExhaustedError

    capped = smoke_config(
        tmp_path, tasks=["sum"], methods=["instructzero"], blackbox={"max_calls": 30}
    )
    with pytest.raises(BudgetExhaustedError, match="max_calls"):
        run_sweep(capped)
    store = ResultsStore(capped.output_path)
    assert not store.is_finished()
    first = store.read_evaluations().to_pylist()
    assert sum(r["calls"] for r in first) <= 30
    # Raising the cap and resuming finishes the sweep; what was recorded stays as it was.
    resumed = run_sweep(
        smoke_config(tmp_path, tasks=["sum"], methods=["instructzero"]), resume=True
    )
    rows = ResultsStore(resumed.uri).read_evaluations().to_pylist()
    budget = capped.budget.n_init + capped.budget.n_rounds * capped.budget.q
    assert sorted(r["eval_index"] for r in rows) == list(range(budget))
    by_index = {r["eval_index"]: r for r in rows}
    for r in first:
        assert by_index[r["eval_index"]]["instruction"] == r["instruction"]
