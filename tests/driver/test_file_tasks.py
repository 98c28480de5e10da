"""Sweeps over a user's own task files, end to end through ``izero sweep`` and ``izero best``.

Real Ray, the tiny generator, the simulated black box, a real MLflow store (SQLite).
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

from izero.cli import main
from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.errors import TaskDataError
from izero.results import ResultsStore, best_instructions

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = REPO / "examples" / "file_tasks"


def example_config(tmp_path: Path, **changes) -> Path:
    """The example config with its data copied to ``tmp_path`` and the results there."""
    raw = yaml.safe_load((EXAMPLE_DIR / "sweep.yaml").read_text())
    for entry in raw["tasks"]:
        copy = tmp_path / Path(entry["path"]).name
        shutil.copy(REPO / entry["path"], copy)
        entry["path"] = str(copy)
    raw["output"] = {"path": str(tmp_path / "runs" / "{name}")}
    raw.update(changes)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def test_csv_and_jsonl_tasks_with_a_plugin_metric_end_to_end(ray_local, tmp_path, capsys):
    db = tmp_path / "mlflow.db"
    config = example_config(tmp_path, tracking={"mlflow": {"uri": f"sqlite:///{db}"}})
    assert main(["sweep", "--config", str(config)]) == 0
    results = tmp_path / "runs" / "file_tasks_demo"
    store = ResultsStore(results)
    assert store.is_finished()
    summaries = store.read_summaries().to_pylist()
    assert {(s["task"], s["method"]) for s in summaries} == {
        (t, m) for t in ("capitals", "word_problems") for m in ("instructzero", "random", "manual")
    }
    # the simulated black box learnt the file tasks: the reference instruction scores well
    manual = {s["task"]: s for s in summaries if s["method"] == "manual"}
    assert manual["word_problems"]["best_dev_score"] >= 0.7
    assert manual["capitals"]["test_score"] >= 0.7
    capsys.readouterr()

    assert main(["best", str(results), "--format", "json"]) == 0
    winners = json.loads(capsys.readouterr().out)
    assert winners == best_instructions(results)
    assert len(winners) == 6
    for row in winners:
        assert {"task", "method", "instruction", "dev_score", "test_score"} <= set(row)
        assert row["task_file"]["sha256"] and row["blackbox_model"] == "izero-sim"
    wp = next(r for r in winners if r["task"] == "word_problems" and r["method"] == "manual")
    assert wp["metric"] == "examples.file_tasks.metrics:close_number (extract last_number)"

    # every (task, method, seed) run is an MLflow run with its metrics and best instruction
    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("file_tasks_demo")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {f"{s['task']}__{s['method']}__0" for s in summaries}
    for s in summaries:
        run = runs[f"{s['task']}__{s['method']}__0"]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["test_score"] == pytest.approx(s["test_score"])
        assert run.data.metrics["total_calls"] == s["total_calls"]
        history = client.get_metric_history(run.info.run_id, "best_dev_score")
        assert history[-1].value == pytest.approx(s["best_dev_score"])
        assert history[-1].step == s["n_evaluations"]
        local = client.download_artifacts(run.info.run_id, "best_instruction.txt", str(tmp_path))
        assert Path(local).read_text(encoding="utf-8") == s["best_instruction"]

    # a resume refuses a task file that changed since the sweep started
    data = tmp_path / "capitals.csv"
    data.write_text(data.read_text() + "Peru,Lima\n")
    assert main(["sweep", "--config", str(config), "--resume"]) == 2
    err = capsys.readouterr().err
    assert "'tasks.capitals.path'" in err and "the file changed" in err


def test_unreachable_tracking_server_warns_once_and_the_sweep_finishes(ray_local, tmp_path, caplog):
    # a port held bound and not listening: connections are refused, and no other process (a
    # Ray worker's gRPC server) can take it meanwhile
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        port = held.getsockname()[1]
        raw = yaml.safe_load(example_config(tmp_path).read_text())
        raw.update(
            tasks=raw["tasks"][:1],
            methods=["manual"],
            tracking={"mlflow": {"uri": f"http://127.0.0.1:{port}"}},
        )
        with caplog.at_level(logging.WARNING, logger="izero"):
            outcome = run_sweep(config_from_dict(raw))
    store = ResultsStore(outcome.uri)
    assert store.is_finished() and store.read_summaries().num_rows == 1
    tracking = [r for r in caplog.records if r.name.startswith("izero.tracking")]
    assert len(tracking) == 1 and "unreachable" in tracking[0].getMessage()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "is empty"),
        ("nation,capital\nFrance,Paris\n", "columns found: nation, capital"),
        ("country,capital\nFrance,Paris\n", "has 1 rows; 16 are needed"),
    ],
)
def test_a_bad_task_file_writes_nothing(tmp_path, content, expected):
    config = example_config(tmp_path)
    (tmp_path / "capitals.csv").write_text(content)
    raw = yaml.safe_load(config.read_text())
    with pytest.raises(TaskDataError, match=expected):
        run_sweep(config_from_dict(raw))
    assert not (tmp_path / "runs").exists()
