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


def test_score_exits_non_zero_when_nothing_was_answered(sum_task, make_server, capsys):
    # every answer is an unparsable body: the server is up (no outage), nothing is answered
    server = make_server(fault_rates={"malformed": 1.0})
    args = _args(
        "--task", "sum", "--instruction", "Add", "--base-url", server.base_url,
        "--model", "izero-sim", "--n", "3", "--max-retries", "1",
    )  # fmt: skip
    report = io.StringIO()
    assert command.run(args, task=sum_task, scorer=exact_scorer, out=report) == 1
    assert "0/3 answered, 3 failed" in report.getvalue()
    err = capsys.readouterr().err
    assert "1 of 1 instructions got no answer" in err and "malformed" in err


def test_score_against_a_dead_endpoint_stops_with_one_line(sum_task, capsys, monkeypatch):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    monkeypatch.setattr("izero.blackbox.preflight.PREFLIGHT_WAIT_S", 0.05)
    base = ("--task", "sum", "--instruction", "Add", "--base-url", base_url, "--model", "m")
    assert command.run(_args(*base, "--n", "3"), task=sum_task, out=io.StringIO()) == 2
    assert "does not answer GET /models" in capsys.readouterr().err
    # without the check, the calls are held for the outage allowance, then it stops
    args = _args(*base, "--n", "3", "--no-preflight", "--outage-allowance-s", "1")
    assert command.run(args, task=sum_task, out=io.StringIO()) == 2
    err = capsys.readouterr().err
    assert "answered nothing" in err and "connection errors" in err and err.count("\n") == 1
