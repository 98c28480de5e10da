"""``izero score`` with an injected task against the simulated endpoint."""

from __future__ import annotations

import argparse
import io
import json

import pyarrow.parquet as pq

from izero.blackbox import command

from .conftest import exact_scorer


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_score_command_prints_and_writes_jsonl(sum_task, tmp_path):
    out_file = tmp_path / "scores.jsonl"
    args = _args(
        "--task",
        "sum",
        "--instruction",
        "Add the two numbers",
        "--instruction",
        "Translate to German",
        "--simulated",
        "--rpm",
        "6000",
        "--n",
        "12",
        "--out",
        str(out_file),
    )
    report = io.StringIO()
    assert command.run(args, task=sum_task, scorer=exact_scorer, out=report) == 0
    lines = report.getvalue().splitlines()
    good, bad = (float(line.split("\t")[0]) for line in lines[:2])
    assert good > bad
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(rows) == 24
    assert {r["instruction"] for r in rows} == {"Add the two numbers", "Translate to German"}
    assert all(r["status"] == "200" and r["score"] in (0.0, 1.0) for r in rows)
    first = [r for r in rows if r["instruction"] == "Add the two numbers"]
    assert sum(r["score"] for r in first) / 12 == good


def test_score_command_parquet_and_clear_error(sum_task, tmp_path, capsys):
    out_file = tmp_path / "scores.parquet"
    args = _args(
        "--task", "sum", "--instruction", "Add", "--simulated", "--n", "5", "--out", str(out_file)
    )
    assert command.run(args, task=sum_task, scorer=exact_scorer, out=io.StringIO()) == 0
    assert pq.read_table(out_file).num_rows == 5
    # a wrong model against the simulated endpoint stops with the endpoint named
    args = _args(
        "--task", "sum", "--instruction", "Add", "--simulated", "--model", "nope", "--n", "3"
    )
    assert command.run(args, task=sum_task, scorer=exact_scorer, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "model nope" in err and "Fix:" in err
