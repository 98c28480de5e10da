"""Config: task-file entries beside task names, and the tracking section."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from izero.cli import main
from izero.config import (
    MlflowConfig,
    TaskFileConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from izero.config.tasks import check_same_task_files, pin_task_digests
from izero.errors import ConfigError
from izero.tasks.metrics import MetricSpec

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "file_tasks" / "sweep.yaml"


def _error(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def entry(**kw) -> dict:
    return {"name": "capitals", "path": "capitals.csv", **kw}


def test_tasks_mix_names_and_file_entries_and_round_trip():
    cfg = config_from_dict(
        {
            "tasks": [
                "sum",
                entry(input="country", output="capital", split="split", separator="|"),
                {"name": "gsm", "path": "s3://b/gsm.parquet", "extract": "last_number"},
            ],
            "metric_overrides": {"sum": "tests.tasks.plugin_metrics:half"},
        }
    )
    assert cfg.task_names == ("sum", "capitals", "gsm") and cfg.n_runs == 3
    assert isinstance(cfg.tasks[1], TaskFileConfig) and cfg.tasks[1].separator == "|"
    assert cfg.metric_for("capitals") == "exact_match"
    assert cfg.metric_for("gsm") == MetricSpec("exact_match", "last_number")
    assert cfg.metric_for("sum") == "tests.tasks.plugin_metrics:half"
    data = config_to_dict(cfg)
    assert json.loads(json.dumps(data)) == data
    assert data["tasks"][0] == "sum" and data["tasks"][1]["input"] == "country"
    assert config_from_dict(data) == cfg


def test_the_example_config_loads():
    cfg = load_config(EXAMPLE)
    assert cfg.task_names == ("capitals", "word_problems")
    assert cfg.metric_for("word_problems") == MetricSpec(
        "examples.file_tasks.metrics:close_number", "last_number"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"tasks": ["sum", entry(name="sum")]}, "'tasks': got 'sum'; expected no duplicates"),
        ({"tasks": [entry(), entry()]}, "no duplicates"),
        ({"tasks": [{"path": "x.csv"}]}, "'tasks.name'"),
        ({"tasks": [entry(colour="red")]}, "'tasks.colour'"),
        ({"tasks": [entry(name="a/b")]}, "'tasks[].name'"),
        ({"tasks": [entry(metric="nosuchmodule_xyz:f")]}, "'tasks.capitals.metric'"),
        ({"tasks": [entry(metric="exact")]}, "unknown metric 'exact'"),
        ({"tasks": [entry(extract="regex:(")]}, "'tasks.capitals.extract'"),
        ({"tasks": [entry(extract="first")]}, "last_number, regex:<pattern>"),
        ({"tasks": [entry(output="input")]}, "'tasks.capitals.output'"),
        ({"tasks": [entry(format="xlsx")]}, "'tasks.format'"),
        ({"tasks": [entry(sha256="abc")]}, "64 lower-case hex digits"),
        ({"tasks": [3]}, "a name or a mapping of TaskFileConfig fields"),
        (
            {"tasks": ["sum", entry()], "metric_overrides": {"capitals": "f1"}},
            "set metric: in the entry of task 'capitals'",
        ),
        (
            {"tasks": ["sum"], "metric_overrides": {"sum": "nosuchmodule_xyz:f"}},
            "'metric_overrides.sum'",
        ),
    ],
)
def test_bad_task_entries_are_refused_with_one_line(raw, expected):
    assert expected in _error(raw)


def test_tasks_override_takes_a_mapping():
    cfg = load_config(overrides=["tasks=[sum, {name: c, path: c.csv, input: q, output: a}]"])
    assert cfg.task_names == ("sum", "c") and cfg.tasks[1].input == "q"
    assert load_config(overrides=["tasks=sum,diff"]).tasks == ("sum", "diff")


def test_changed_task_file_digest_refuses_resume():
    entry_config = TaskFileConfig("c", "c.csv")
    old = pin_task_digests((entry_config,), {"c": "a" * 64})
    old_tasks = config_to_dict(config_from_dict({"tasks": list(old)}))["tasks"]
    assert old_tasks[0]["sha256"] == "a" * 64
    check_same_task_files(old_tasks, old)  # unchanged: fine
    changed = pin_task_digests((entry_config,), {"c": "b" * 64})
    with pytest.raises(ConfigError) as info:
        check_same_task_files(old_tasks, changed)
    msg = str(info.value)
    assert "'tasks.c.path'" in msg and "aaaaaaaaaaaa" in msg and "bbbbbbbbbbbb" in msg
    assert "restore it, or start a new sweep" in msg


def test_tracking_section():
    cfg = config_from_dict({"tracking": {"mlflow": {"uri": "sqlite:///runs/mlflow.db"}}})
    assert cfg.tracking.mlflow == MlflowConfig(uri="sqlite:///runs/mlflow.db")
    assert config_from_dict(config_to_dict(cfg)) == cfg
    assert config_from_dict({}).tracking.mlflow is None
    msg = _error({"tracking": {"mlflow": {"uri": "https://me:hunter2@mlflow.example"}}})
    assert "hunter2" not in msg and "MLFLOW_TRACKING_PASSWORD" in msg
    assert "'tracking.mlflow.uri'" in _error({"tracking": {"mlflow": {"uri": " "}}})
    assert "'tracking.mlflow.experiment'" in _error(
        {"tracking": {"mlflow": {"uri": "sqlite:///x.db", "experiment": ""}}}
    )


def test_validate_reads_the_task_files(tmp_path, capsys):
    data = tmp_path / "t.csv"
    data.write_text("q,a\n" + "".join(f"in {i},out {i}\n" for i in range(12)))
    config = tmp_path / "c.yaml"
    config.write_text(
        f"tasks:\n  - {{name: t, path: {data}, input: q, output: a}}\nbudget: {{preset: smoke}}\n"
    )
    assert main(["validate", "--config", str(config)]) == 0
    assert "# OK: 1 tasks" in capsys.readouterr().out
    assert main(["validate", "--config", str(config), "--set", "budget.n_dev=7"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("izero: error: task 't'") and "12 rows; 13 are needed" in err
    assert "\n" not in err
    assert main(["tasks", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "t " in out and "table" in out and "1 tasks" in out
