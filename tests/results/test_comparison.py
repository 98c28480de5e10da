"""The method comparison: intervals, paired verdicts against a reference, sentences, the plot.

Every sweep here is written as real Parquet through :class:`ResultsStore`; the expected numbers
come from hand calculation or from SciPy's own t-tests (``ttest_1samp``, ``ttest_rel``,
``ttest_ind``), not from the code under test.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from izero.errors import ResultsError
from izero.results import ResultsStore
from izero.results import command as report_command
from izero.results.comparison import (
    combined_interval,
    compare_methods,
    method_curves,
    noise_sentences,
    t_interval,
    verdict,
)
from izero.results.report import METHOD_PLOT, build_report
from tests.results.conftest import evaluation_row, summary_row, write_synthetic
from tests.results.test_report import _assert_png

TASKS = ("alpha", "beta", "gamma")
SEEDS = (0, 1, 2, 3, 4)
# Reference test scores, task -> per seed.
BASE = {
    "alpha": [0.40, 0.55, 0.35, 0.50, 0.45],
    "beta": [0.60, 0.50, 0.70, 0.65, 0.55],
    "gamma": [0.30, 0.20, 0.25, 0.35, 0.40],
}
# better: the reference + 0.2 with small per-seed noise (a clear win on every task);
# noisy: the reference + zero-mean noise (a tie on every task);
# manual: seed 0 only (undecided everywhere: one paired seed).
BETTER_NOISE = [0.01, -0.01, 0.02, -0.02, 0.0]
NOISY_NOISE = [0.10, -0.10, 0.05, -0.05, 0.0]


def _test_scores(method: str, task: str) -> dict[int, float]:
    base = BASE[task]
    if method == "instructzero":
        return dict(enumerate(base))
    if method == "better":
        return {s: base[s] + 0.2 + BETTER_NOISE[s] for s in SEEDS}
    if method == "noisy":
        return {s: base[s] + NOISY_NOISE[s] for s in SEEDS}
    if method == "manual":
        return {0: base[0] + 0.3}
    raise AssertionError(method)


METHODS = ("better", "instructzero", "manual", "noisy")


def _write_sweep(store: ResultsStore, methods=METHODS, tasks=TASKS) -> None:
    for task in tasks:
        for method in methods:
            for seed, test in _test_scores(method, task).items():
                # Best dev so far rises to test + 0.1 over six evaluations (index 4 the best).
                best = test + 0.1
                dev = [best - 0.3, None, best - 0.1, best - 0.2, best, best - 0.05]
                store.append_evaluations(
                    [evaluation_row(task, method, seed, i, d) for i, d in enumerate(dev)]
                )
                store.append_summaries([summary_row(task, method, seed, best, test)])
    store.mark_finished()


@pytest.fixture()
def sweep(tmp_path) -> ResultsStore:
    store = ResultsStore(tmp_path / "cmp")
    _write_sweep(store)
    return store


# --------------------------------------------------------------------------- intervals


def test_t_interval_hand_values_scipy_and_edge_cases():
    iv = t_interval([0.8, 0.9, 1.0])
    # mean 0.9, sd 0.1, t(0.975, 2) = 4.3027 -> half-width 0.2484
    assert iv.mean == pytest.approx(0.9) and iv.n == 3
    assert (iv.lo, iv.hi) == pytest.approx((0.9 - 0.24841, 0.9 + 0.24841), abs=1e-5)
    values = [0.31, 0.52, 0.47, 0.12, 0.66, 0.5]
    ci = stats.ttest_1samp(values, 0.0).confidence_interval(0.95)
    got = t_interval(values)
    assert (got.lo, got.hi) == pytest.approx((ci.low, ci.high), rel=1e-12)
    ci90 = stats.ttest_1samp(values, 0.0).confidence_interval(0.9)
    got90 = t_interval(values, confidence=0.9)
    assert (got90.lo, got90.hi) == pytest.approx((ci90.low, ci90.high), rel=1e-12)
    one = t_interval([0.7])  # a single seed: mean, no interval
    assert one.mean == 0.7 and not one.defined and one.lo is None and verdict(one) == "undecided"
    empty = t_interval([])
    assert empty.mean is None and empty.n == 0
    same = t_interval([0.5, 0.5, 0.5])  # no spread at all: a zero-width interval
    assert (same.lo, same.hi) == (0.5, 0.5) and same.covers(0.5) and not same.covers(0.50001)


def test_combined_interval_matches_welch_and_reduces_to_t():
    a, b = [0.3, 0.5, 0.4], [0.6, 0.9, 0.7, 0.8]
    iv = combined_interval([a, b])
    # The mean of two group means has half the standard error of their difference and the
    # same Welch-Satterthwaite degrees of freedom: half of Welch's interval width.
    welch = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert iv.mean == pytest.approx((0.4 + 0.75) / 2) and iv.n == 7
    assert (iv.hi - iv.lo) / 2 == pytest.approx((welch.high - welch.low) / 4, rel=1e-12)
    assert combined_interval([a]) == t_interval(a)
    assert not combined_interval([a, [0.9]]).defined  # one group with a single value
    assert combined_interval([[], a]) == t_interval(a)  # empty groups are ignored


def test_verdicts():
    assert verdict(t_interval([0.1, 0.2, 0.15])) == "win"
    assert verdict(t_interval([-0.1, -0.2, -0.15])) == "loss"
    assert verdict(t_interval([-0.1, 0.2, 0.05])) == "tie"
    assert verdict(t_interval([0.0, 0.0])) == "tie"  # identical scores: within noise
    assert verdict(t_interval([0.3])) == "undecided"


# --------------------------------------------------------------------------- comparison


def test_comparison_numbers_from_parquet(sweep):
    c = compare_methods(sweep.read_summaries())
    assert c.methods == METHODS and c.tasks == TASKS
    assert c.reference == "instructzero" and c.single_seed
    # Per task: mean over seeds and the t-interval SciPy gives.
    for task in TASKS:
        for method in METHODS:
            ts = c.per_task[(task, method)]
            expected = _test_scores(method, task)
            assert ts.seeds == tuple(sorted(expected))
            assert ts.interval.mean == pytest.approx(np.mean(list(expected.values())))
            if len(expected) > 1:
                ci = stats.ttest_1samp(list(expected.values()), 0.0).confidence_interval(0.95)
                assert (ts.interval.lo, ts.interval.hi) == pytest.approx((ci.low, ci.high))
            else:
                assert not ts.interval.defined
    # Per method: the mean of per-task means; "better" is 0.2 above the reference on average.
    ref_mean = np.mean([np.mean(v) for v in BASE.values()])
    assert c.per_method["instructzero"].mean == pytest.approx(ref_mean)
    assert c.per_method["better"].mean == pytest.approx(ref_mean + 0.2)
    assert c.per_method["better"].defined and not c.per_method["manual"].defined
    versus = {v.method: v for v in c.versus}
    assert set(versus) == {"better", "noisy", "manual"}
    # better: a win on every task, paired differences 0.2 + noise, as scipy's paired test.
    b = versus["better"]
    assert dict(b.counts) == {"win": 3, "tie": 0, "loss": 0, "undecided": 0}
    assert b.verdict == "win" and b.interval.mean == pytest.approx(0.2)
    for p in b.per_task:
        mine, ref = _test_scores("better", p.task), _test_scores("instructzero", p.task)
        ci = stats.ttest_rel(list(mine.values()), list(ref.values())).confidence_interval(0.95)
        assert (p.interval.lo, p.interval.hi) == pytest.approx((ci.low, ci.high))
        assert p.diffs == pytest.approx([0.2 + n for n in BETTER_NOISE])
    # Over tasks, the per-task differences have the same spread: Welch-Satterthwaite gives
    # 3 * 4 = 12 degrees of freedom and se = sd / sqrt(5) / sqrt(3).
    sd = np.std(BETTER_NOISE, ddof=1)
    half = stats.t.ppf(0.975, 12) * sd / math.sqrt(5 * 3)
    assert (b.interval.lo, b.interval.hi) == pytest.approx((0.2 - half, 0.2 + half))
    # noisy: zero-mean noise, a tie everywhere and overall.
    n = versus["noisy"]
    assert dict(n.counts) == {"win": 0, "tie": 3, "loss": 0, "undecided": 0}
    assert n.verdict == "tie" and n.interval.mean == pytest.approx(0.0, abs=1e-12)
    assert n.interval.covers(0.0)
    # manual: one paired seed per task -> undecided, and its overall interval is undefined.
    m = versus["manual"]
    assert dict(m.counts) == {"win": 0, "tie": 0, "loss": 0, "undecided": 3}
    assert m.verdict == "undecided" and m.interval.mean == pytest.approx(0.3)


def test_reference_choice_and_bad_reference(sweep):
    summaries = sweep.read_summaries()
    c = compare_methods(summaries, reference="noisy")
    assert c.reference == "noisy" and {v.method for v in c.versus} == {
        "better",
        "instructzero",
        "manual",
    }
    better = next(v for v in c.versus if v.method == "better")
    assert better.interval.mean == pytest.approx(0.2)  # the noise is zero-mean
    with pytest.raises(ResultsError, match=r"got 'ape'.*\(better, instructzero, manual, noisy\)"):
        compare_methods(summaries, reference="ape")


def test_default_reference_without_instructzero_and_single_method(tmp_path):
    store = ResultsStore(tmp_path / "s")
    _write_sweep(store, methods=("noisy", "better"))
    c = compare_methods(store.read_summaries())
    assert c.reference == "better"  # first by name
    assert [v.method for v in c.versus] == ["noisy"]
    assert c.versus[0].verdict == "loss"  # noisy is about 0.2 below better on every task
    alone = ResultsStore(tmp_path / "one")
    _write_sweep(alone, methods=("noisy",))
    c = compare_methods(alone.read_summaries())
    assert c.reference is None and c.versus == ()
    assert any("Only one method (noisy)" in s for s in noise_sentences(c))


def test_runs_without_test_scores_are_left_out(tmp_path):
    store = ResultsStore(tmp_path / "s")
    store.append_summaries(
        [
            summary_row("t", "instructzero", 0, 0.5, 0.4),
            summary_row("t", "instructzero", 1, 0.5, None),
            summary_row("t", "random", 0, 0.5, 0.6),
            summary_row("t", "random", 1, 0.5, 0.5),
        ]
    )
    c = compare_methods(store.read_summaries())
    assert c.per_task[("t", "instructzero")].seeds == (0,)
    [v] = c.versus
    assert v.per_task[0].seeds == (0,) and v.per_task[0].diffs == pytest.approx((0.2,))
    assert v.verdict == "undecided"
    empty = compare_methods(ResultsStore(tmp_path / "none").read_summaries())
    assert empty.methods == () and noise_sentences(empty) == [
        "No run has a test score yet: nothing to compare."
    ]


def test_noise_sentences_say_what_is_within_noise(sweep):
    text = "\n".join(noise_sentences(compare_methods(sweep.read_summaries())))
    assert "better scores higher than instructzero beyond noise: mean difference +0.200" in text
    assert "(3 wins, 0 ties, 0 losses over 3 tasks)" in text
    assert "noisy against instructzero: mean difference +0.000" in text
    assert "within noise (0 wins, 3 ties, 0 losses over 3 tasks)" in text
    assert "manual against instructzero: mean difference +0.300" in text
    assert "3 undecided" in text and "cannot be told from noise" in text
    assert "its interval is undefined (n/a)" in text  # manual has a single seed
    assert "about one comparison in twenty" in text


def test_all_within_noise_is_said_plainly(tmp_path):
    store = ResultsStore(tmp_path / "s")
    _write_sweep(store, methods=("instructzero", "noisy"))
    sentences = noise_sentences(compare_methods(store.read_summaries()))
    assert sentences[-1].startswith(
        "No method differs from instructzero beyond noise on the mean over tasks"
    )
    assert not any("single seed" in s for s in sentences)


# --------------------------------------------------------------------------- curves, report


def test_method_curves_mean_over_tasks_and_seeds(sweep):
    curves = method_curves(sweep.read_evaluations())
    assert set(curves) == set(METHODS)
    c = curves["better"]
    assert c.runs == len(TASKS) * len(SEEDS) and c.x.tolist() == [1, 2, 3, 4, 5, 6]
    # Running best of [b-0.3, None, b-0.1, b-0.2, b, b-0.05] with b = test + 0.1.
    offsets = [-0.3, -0.3, -0.1, -0.1, 0.0, 0.0]
    mean_best = np.mean([np.mean(list(_test_scores("better", t).values())) for t in TASKS]) + 0.1
    np.testing.assert_allclose(c.mean, [mean_best + o for o in offsets], atol=1e-12)
    # The band at each step is the combined interval of the per-task best-so-far values.
    last = [[v + 0.1 for v in _test_scores("better", t).values()] for t in TASKS]
    iv = combined_interval(last)
    assert (c.lo[-1], c.hi[-1]) == pytest.approx((iv.lo, iv.hi))
    assert c.lo[0] < c.mean[0] < c.hi[0]
    # manual has one seed per task: a line without a band.
    assert np.all(np.isnan(curves["manual"].lo)) and not np.any(np.isnan(curves["manual"].mean))


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def test_markdown_report_has_the_comparison(sweep):
    report = build_report(sweep)
    text = Path(report.path).read_text()
    assert report.comparison.reference == "instructzero"
    # Per-task table: columns in method order, hand-checked alpha/instructzero cell.
    header, vs_header = [ln for ln in text.splitlines() if ln.startswith("| task | better |")]
    assert _cells(header) == ["task", *METHODS]
    assert _cells(vs_header) == ["task", "better", "manual", "noisy"]
    alpha = next(ln for ln in text.splitlines() if ln.startswith("| alpha | "))
    ci = stats.ttest_1samp(BASE["alpha"], 0.0).confidence_interval(0.95)
    assert _cells(alpha)[2] == f"0.450 [{ci.low:.3f}, {ci.high:.3f}] n=5"
    assert _cells(alpha)[3] == "0.700 [n/a] n=1"
    [mean_row] = [ln for ln in text.splitlines() if ln.startswith("| mean over tasks |")]
    assert _cells(mean_row)[3] == "0.733 [n/a]"  # manual: (0.7 + 0.9 + 0.6) / 3, one seed
    # Against the reference.
    [better] = [ln for ln in text.splitlines() if ln.startswith("| better | 3 | +0.200 [")]
    assert _cells(better)[3:] == ["3", "0", "0", "0", "higher, beyond noise"]
    [noisy] = [ln for ln in text.splitlines() if ln.startswith("| noisy | 3 | +0.000 [")]
    assert _cells(noisy)[3:] == ["0", "3", "0", "0", "within noise"]
    [manual] = [ln for ln in text.splitlines() if ln.startswith("| manual | 3 | +0.300 [n/a]")]
    assert _cells(manual)[3:] == ["0", "0", "0", "3", "interval undefined"]
    # Per task against the reference.
    assert "## Per task against instructzero" in text
    [gamma] = [ln for ln in text.splitlines() if ln.startswith("| gamma | +0.200 [")]
    assert _cells(gamma)[1].endswith(" win") and _cells(gamma)[3].endswith(" tie")
    assert _cells(gamma)[2] == "+0.300 [n/a] undecided"
    assert "## What is within noise" in text and "- noisy against instructzero" in text
    # The per-method plot.
    assert f"![Best dev score against evaluations, per method](plots/{METHOD_PLOT})" in text
    [plot] = [p for p in report.plots if p.endswith(METHOD_PLOT)]
    _assert_png(Path(plot))


def test_html_report_and_cli_reference(sweep, tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="izero report")
    report_command.add_arguments(parser)
    args = parser.parse_args(
        [sweep.uri, "--format", "html", "--out", str(tmp_path / "h"), "--reference", "noisy"]
    )
    assert args.reference == "noisy"
    assert report_command.run(args) == 0
    text = (tmp_path / "h" / "report.html").read_text()
    assert "<h2>Against noisy</h2>" in text
    assert "<th>mean difference to noisy [95%]</th>" in text
    assert "<td>instructzero</td><td>3</td><td>+0.000 [" in text
    assert f'<img src="plots/{METHOD_PLOT}"' in text
    # An unknown reference: one line, exit 2, nothing written.
    args = parser.parse_args([sweep.uri, "--out", str(tmp_path / "bad"), "--reference", "ape"])
    assert report_command.run(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("izero report: error: report reference: got 'ape'")
    assert err.count("\n") == 1 and "--reference" in err
    assert not (tmp_path / "bad").exists()


def test_single_seed_sweep_says_intervals_are_undefined(tmp_path):
    store = ResultsStore(tmp_path / "s")
    store.append_summaries(
        [summary_row(t, m, 0, 0.5, s) for t, m, s in [("a", "instructzero", 0.4), ("a", "x", 0.6)]]
    )
    text = Path(build_report(store).path).read_text()
    assert "| a | 0.400 [n/a] n=1 | 0.600 [n/a] n=1 |" in text
    assert "| x | 1 | +0.200 [n/a] | 0 | 0 | 0 | 1 | interval undefined |" in text
    assert "a difference there cannot be told from noise" in text


def test_existing_synthetic_report_keeps_its_comparison(tmp_path):
    store = ResultsStore(tmp_path / "s")
    write_synthetic(store)
    report = build_report(store)
    [v] = report.comparison.versus
    # sum: random is exactly 0.3 below on every seed -> a loss; antonyms: two paired seeds
    # (0.25 - 0.4, 0.3 - 0.6) -> within noise.
    verdicts = {p.task: p.verdict for p in v.per_task}
    assert verdicts == {"sum": "loss", "antonyms": "tie"}
    assert v.per_task[0].seeds == (0, 2)
