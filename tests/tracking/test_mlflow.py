"""MLflow tracking against a real local store (SQLite), fed by the real recorder."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest
from mlflow import MlflowClient

from izero.driver.recorder import Recorder
from izero.results import ResultsStore
from izero.tracking import MlflowTracker
from izero.tracking.mlflow_tracker import flatten_params, prompt_template

from ..results.conftest import evaluation_row, summary_row

TEMPLATE = "{instruction}\n\nInput: {input}\nOutput:"
PARAMS = {
    "name": "t",
    "budget": {"q": 3, "n_dev": 2},
    "tasks": ["sum"],
    "blackbox": {"headers": {}},
}


def _tracker(uri: str, **kw) -> MlflowTracker:
    return MlflowTracker(
        uri=uri, experiment="izero-test", sweep="t", params=PARAMS, template=TEMPLATE, **kw
    )


def _rows(seed: int, scores: list[float | None]) -> list[dict]:
    return [evaluation_row("sum", "instructzero", seed, i, s) for i, s in enumerate(scores)]


def _recorder(tmp_path, listeners) -> Recorder:
    store = ResultsStore(tmp_path / "results")
    return Recorder(
        store=store, sweep="t", generator_model="tiny", blackbox_model="sim", listeners=listeners
    )


@pytest.fixture()
def sqlite_uri(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_runs_metrics_artifacts_and_prompts_land_in_the_store(tmp_path, sqlite_uri):
    tracker = _tracker(sqlite_uri)
    recorder = _recorder(tmp_path, [tracker])
    rows = _rows(0, [0.2, None, 0.5, 0.4, 0.7, 0.6])
    summary = summary_row("sum", "instructzero", 0, 0.7, 0.65)

    async def sweep():
        await recorder.append(rows[:3], [])  # round 0
        await recorder.append(rows[3:], [])  # round 1
        await recorder.append([], [], summaries=[summary])

    asyncio.run(sweep())
    tracker.close()
    assert tracker.disabled_reason is None

    client = MlflowClient(tracking_uri=sqlite_uri, registry_uri=sqlite_uri)
    experiment = client.get_experiment_by_name("izero-test")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "sum__instructzero__0" and run.info.status == "FINISHED"
    # artifacts beside the database, not in ./mlruns of whatever the working directory is
    assert run.info.artifact_uri.startswith((tmp_path / "mlartifacts").as_uri())
    assert run.data.tags["izero.sweep"] == "t"
    assert run.data.params["budget.q"] == "3" and run.data.params["task"] == "sum"
    assert run.data.params["tasks"] == '["sum"]' and run.data.params["seed"] == "0"
    best = client.get_metric_history(run.info.run_id, "best_dev_score")
    assert [(m.step, m.value) for m in best] == [(3, 0.5), (6, 0.7), (6, 0.7)]
    dev = client.get_metric_history(run.info.run_id, "dev_score")
    assert sorted((m.step, m.value) for m in dev) == [
        (1, 0.2),
        (3, 0.5),
        (4, 0.4),
        (5, 0.7),
        (6, 0.6),
    ]
    metrics = run.data.metrics
    assert metrics["test_score"] == 0.65 and metrics["total_calls"] == 14
    assert metrics["total_tokens"] == 770 and metrics["total_cost_usd"] == pytest.approx(0.01)
    assert [m.value for m in client.get_metric_history(run.info.run_id, "calls")] == [6, 12]
    local = client.download_artifacts(run.info.run_id, "best_instruction.txt", str(tmp_path))
    with open(local, encoding="utf-8") as f:
        assert f.read() == summary["best_instruction"]
    details = client.download_artifacts(run.info.run_id, "best_instruction.json", str(tmp_path))
    with open(details, encoding="utf-8") as f:
        data = json.load(f)
    assert data["test_score"] == 0.65 and data["template"] == TEMPLATE
    prompt = client.load_prompt("t.sum.instructzero", version=1)
    assert prompt.template == prompt_template(TEMPLATE, summary["best_instruction"])
    assert "{{input}}" in prompt.template and prompt.tags["seed"] == "0"


def test_a_resumed_sweep_logs_into_the_same_run(tmp_path, sqlite_uri):
    rows = _rows(1, [0.3, 0.9, 0.1, 0.2])
    first = _tracker(sqlite_uri)
    first.on_rows(rows[:2], [])
    first.close()  # killed after round 0
    second = _tracker(sqlite_uri)
    second.on_existing(rows[:2], [])  # what the resumed recorder finds in the results
    second.on_rows(rows[2:], [])
    second.on_rows([], [summary_row("sum", "instructzero", 1, 0.9, 0.5)])
    second.close()
    client = MlflowClient(tracking_uri=sqlite_uri)
    experiment = client.get_experiment_by_name("izero-test")
    (run,) = client.search_runs([experiment.experiment_id])
    best = client.get_metric_history(run.info.run_id, "best_dev_score")
    # the best so far carries over the resume (0.9 from before it, not 0.2)
    assert [(m.step, m.value) for m in best] == [(2, 0.9), (4, 0.9), (6, 0.9)]
    assert run.info.status == "FINISHED"


def test_an_unreachable_server_warns_once_and_the_rows_still_land(tmp_path, caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket is closed
    tracker = _tracker(f"http://127.0.0.1:{port}")
    recorder = _recorder(tmp_path, [tracker])
    rows = _rows(0, [0.2, 0.4, 0.6])

    async def sweep():
        for row in rows:
            await recorder.append([row], [])
        await recorder.append([], [], summaries=[summary_row("sum", "instructzero", 0, 0.6, 1)])

    with caplog.at_level(logging.WARNING, logger="izero"):
        asyncio.run(sweep())
        tracker.close()
    warnings = [r for r in caplog.records if r.name.startswith("izero.tracking")]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert tracker.disabled_reason is not None
    store = recorder.store
    assert store.read_evaluations().num_rows == 3 and store.read_summaries().num_rows == 1


def test_a_failing_listener_never_stops_the_recorder(tmp_path, caplog):
    class Broken:
        def on_rows(self, rows, summaries):
            raise RuntimeError("boom")

    recorder = _recorder(tmp_path, [Broken()])
    with caplog.at_level(logging.WARNING, logger="izero"):
        asyncio.run(recorder.append(_rows(0, [0.5]), []))
        asyncio.run(recorder.append(_rows(0, [0.5, 0.6])[1:], []))
    assert recorder.store.read_evaluations().num_rows == 2
    assert recorder.listeners == []
    assert sum("dropping row listener" in r.getMessage() for r in caplog.records) == 1


def test_params_are_flat_text():
    flat = flatten_params({"a": {"b": 1, "c": [1, 2], "d": {}}, "e": None, "f": "x" * 7000})
    assert flat["a.b"] == "1" and flat["a.c"] == "[1, 2]" and flat["a.d"] == "{}"
    assert flat["e"] == "null" and len(flat["f"]) == 6000
