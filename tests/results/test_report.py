"""The report: per-task table with correct means, instructions, and valid PNG plots."""

from __future__ import annotations

import argparse
import datetime as dt
import re
import warnings
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from matplotlib import image as mpimg

from izero.errors import ResultsError
from izero.results import ResultsStore, calls_table, evaluations_table
from izero.results import command as report_command
from izero.results.analysis import best_so_far_curves, call_rate, method_results, request_times
from izero.results.report import BEST_DEV_PLOT, CALL_RATE_PLOT, METHOD_PLOT, build_report
from tests.results.conftest import (
    BEST,
    RPM,
    SEEDS,
    T0,
    call_rows,
    evaluation_row,
    instruction,
    write_synthetic,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert float(np.std(img)) > 0.01  # something was drawn


def _stats(values):
    arr = np.asarray(values, dtype=float)
    return arr.mean(), (arr.std(ddof=1) if arr.size > 1 else 0.0)


def _row_of(text: str, task: str, method: str) -> str:
    [line] = [ln for ln in text.splitlines() if ln.startswith(f"| {task} | {method} |")]
    return line


def test_markdown_report_table_numbers_instructions_and_plots(synthetic):
    report = build_report(synthetic.store)
    out = Path(synthetic.store.root) / "report"
    assert report.path == str(out / "report.md")
    text = (out / "report.md").read_text()
    for (task, method), per_seed in BEST.items():
        line = _row_of(text, task, method)
        dev_m, dev_s = _stats([d for d, _ in per_seed])
        tests = [t for _, t in per_seed if t is not None]
        test_m, test_s = _stats(tests)
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[2] == str(len(SEEDS))
        assert cells[3] == f"{dev_m:.3f} ± {dev_s:.3f}"
        assert cells[4] == f"{test_m:.3f} ± {test_s:.3f}"
        best_seed = max(range(len(per_seed)), key=lambda s: per_seed[s][0])
        assert cells[5] == instruction(task, method, best_seed, 4)
        assert cells[6].startswith(f"seed {best_seed}: dev {per_seed[best_seed][0]:.3f}")
    # Hand-checked values: sum/instructzero test 0.8, 0.9, 1.0; antonyms/instructzero has a
    # seed without a test score.
    assert "| sum | instructzero | 3 | 0.900 ± 0.050 | 0.900 ± 0.100 |" in text
    assert "| antonyms | instructzero | 3 | 0.750 ± 0.050 | 0.500 ± 0.141 |" in text
    # Overview: mean test over tasks, instructzero wins both tasks.
    assert "| instructzero | 2 | 0.825 | 0.700 | 2 |" in text
    assert "| random | 2 | 0.575 | 0.450 | 0 |" in text
    # Provenance and rate facts, no secrets.
    assert "sk-secret" not in text and "synthetic" in text
    assert f"of the {RPM:g}/min limit" in text
    n_failed = sum(1 for i in range(240) if i % 7 and i % 25 == 3)
    assert f"{synthetic.n_requests} HTTP requests, {n_failed} ended in 429" in text
    assert f"![Best dev score against evaluations, per task](plots/{BEST_DEV_PLOT})" in text
    assert f"(plots/{CALL_RATE_PLOT})" in text
    assert sorted(report.plots) == sorted(
        str(out / "plots" / p) for p in (METHOD_PLOT, BEST_DEV_PLOT, CALL_RATE_PLOT)
    )
    for plot in report.plots:
        _assert_png(Path(plot))


def test_html_report_to_a_file_uri_escapes_text(tmp_path):
    store = ResultsStore(tmp_path / "s")
    write_synthetic(store)
    store.append_evaluations(
        [evaluation_row("sum", "manual", 0, 0, 0.99, instr="Add <b>both</b> | numbers & go")]
    )
    report = build_report(str(tmp_path / "s"), out=f"file://{tmp_path}/html", fmt="html")
    text = (tmp_path / "html" / "report.html").read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "Add &lt;b&gt;both&lt;/b&gt; | numbers &amp; go" in text
    assert "<td>sum</td><td>manual</td><td>1</td><td>0.990 ± 0.000</td><td>n/a</td>" in text
    assert f'<img src="plots/{BEST_DEV_PLOT}"' in text
    for plot in report.plots:
        _assert_png(Path(plot))


def test_unfinished_sweep_reports_best_dev_so_far(tmp_path):
    store = ResultsStore(tmp_path / "s")
    write_synthetic(store, summaries=False)
    report = build_report(store, fmt="md", rate_limit_rpm=50)
    text = Path(report.path).read_text()
    assert "no (partial results)" in text
    # Without summaries the best dev comes from the evaluations: same values, test n/a.
    assert "| sum | random | 3 | 0.600 ± 0.100 | n/a |" in text
    assert "of the 50/min limit" in text


def test_method_results_and_best_so_far_curves(synthetic):
    store = synthetic.store
    results = method_results(summaries=store.read_summaries(), evaluations=store.read_evaluations())
    by_key = {(r.task, r.method): r for r in results}
    r = by_key[("antonyms", "instructzero")]
    assert r.seeds == (0, 1, 2) and r.n_test_seeds == 2
    assert r.test_mean == pytest.approx(0.5) and r.test_std == pytest.approx(
        np.std([0.4, 0.6], ddof=1)
    )
    assert r.best_seed == 1 and r.best_test is None
    curves = best_so_far_curves(store.read_evaluations())
    mat = curves["sum"]["random"]
    assert mat.shape == (3, 6)
    best = 0.7  # seed 1
    np.testing.assert_allclose(mat[1], [best - 0.3, best - 0.3, best - 0.1, best - 0.1, best, best])


def test_latest_summary_wins_and_nan_before_first_score(tmp_path):
    store = ResultsStore(tmp_path / "s")
    rows = [evaluation_row("t", "random", 0, i, s) for i, s in enumerate([None, 0.2, 0.1])]
    store.append_evaluations(evaluations_table(rows))
    mat = best_so_far_curves(store.read_evaluations())["t"]["random"]
    assert np.isnan(mat[0, 0]) and mat[0, 1:].tolist() == [0.2, 0.2]
    from tests.results.conftest import summary_row

    old = summary_row("t", "random", 0, 0.2, 0.1)
    new = dict(old, test_score=0.3, finished_at=old["finished_at"] + dt.timedelta(minutes=1))
    store.append_summaries([new])
    store.append_summaries([old])
    [res] = method_results(summaries=store.read_summaries(), evaluations=store.read_evaluations())
    assert res.test_mean == pytest.approx(0.3)


def test_request_times_and_call_rate():
    rows, n_requests = call_rows(20)
    calls = calls_table(rows)
    times = request_times(calls)
    assert times.size == n_requests
    retried = calls.filter(pc.equal(calls.column("attempts"), 2)).to_pylist()[0]
    t = retried["started_at"].timestamp()
    assert (
        np.sum(np.isclose(times, t, rtol=0, atol=1e-4)) == 1
        and np.sum(np.isclose(times, t + 0.1, rtol=0, atol=1e-4)) == 1
    )
    # 240 calls evenly over 3 minutes, in 60 s bins.
    edges, rate, bin_s = call_rate(times, bin_s=60.0)
    assert bin_s == 60.0 and edges.tolist() == [0.0, 1.0, 2.0]
    assert rate.sum() == n_requests
    # Exact rates on a hand-made series: 30 requests in the first 30 s, 10 in the next 30 s.
    series = np.concatenate([np.linspace(0, 29, 30), np.linspace(30, 59, 10)]) + 1e9
    edges, rate, _ = call_rate(series, bin_s=30.0)
    assert rate.tolist() == [60.0, 20.0]
    edges, rate, bin_s = call_rate(series)  # automatic bins: span 59 s / 30 -> ~2 s
    assert 1.0 <= bin_s <= 2.0 and rate.sum() * bin_s / 60.0 == pytest.approx(40)
    with pytest.raises(ResultsError, match="positive"):
        call_rate(series, bin_s=-1.0)


def test_task_without_any_dev_score_plots_without_warnings(tmp_path):
    store = ResultsStore(tmp_path / "s")
    store.append_evaluations(
        [evaluation_row("t", "random", 0, i, None) for i in range(3)]
        + [evaluation_row("u", "random", 0, 0, 0.5)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        report = build_report(store)
    text = Path(report.path).read_text()
    assert "| t | random | 1 | n/a | n/a |  |  |" in text
    _assert_png(Path(report.plots[0]))


def test_errors_for_empty_results_and_bad_options(tmp_path):
    with pytest.raises(ResultsError, match="no results at"):
        build_report(tmp_path / "empty")
    store = ResultsStore(tmp_path / "s")
    store.append_evaluations([evaluation_row("t", "random", 0, 0, 0.5)])
    with pytest.raises(ResultsError, match="expected one of md, html"):
        build_report(store, fmt="pdf")
    with pytest.raises(ResultsError, match="positive number"):
        build_report(store, rate_limit_rpm=0)
    report = build_report(store)  # no calls, no provenance: table and one plot
    text = Path(report.path).read_text()
    assert "No black-box requests were recorded" in text
    assert [Path(p).name for p in report.plots] == [METHOD_PLOT, BEST_DEV_PLOT]


def test_command_arguments_and_exit_codes(tmp_path, capsys):
    store = ResultsStore(tmp_path / "s")
    write_synthetic(store)
    parser = argparse.ArgumentParser(prog="izero report")
    report_command.add_arguments(parser)
    args = parser.parse_args(
        [str(tmp_path / "s"), "--format", "html", "--out", str(tmp_path / "r")]
    )
    assert report_command.run(args) == 0
    out = capsys.readouterr().out
    assert re.search(r"report: .*/r/report\.html", out) and out.count("plot:") == 3
    assert (tmp_path / "r" / "plots" / CALL_RATE_PLOT).is_file()
    args = parser.parse_args([str(tmp_path / "missing"), "--rpm-limit", "10"])
    assert args.rpm_limit == 10.0 and args.format == "md"
    assert report_command.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("izero report: error: no results at") and err.count("\n") == 1
    with pytest.raises(SystemExit):
        parser.parse_args([str(tmp_path / "s"), "--format", "pdf"])


def test_timestamps_in_calls_are_utc(tmp_path):
    store = ResultsStore(tmp_path / "s")
    rows, _ = call_rows(1)
    store.append_calls(rows)
    first = store.read_calls().column("started_at")[0].as_py()
    assert first == T0 and first.tzinfo is not None
