"""The method comparison: test scores with 95% intervals, and what is within noise.

Statistics (pure functions of the results tables, no I/O):

- **per task**: each method's mean test score over seeds, with a 95% Student-t interval over
  seeds (``mean ± t(0.975, n-1) * sd / sqrt(n)``, sample sd). With one seed the interval is
  undefined (None): one run cannot tell a difference from noise.
- **per method**: the mean of its per-task means. Tasks are taken as fixed and seeds as the
  noise: the interval combines the per-task variances of the means
  (``se^2 = sum_t sd_t^2 / n_t / T^2``) with Welch-Satterthwaite degrees of freedom. It is
  undefined when a task has a single seed. With one task it is the per-task interval.
- **against a reference method**, per task, *paired over seeds* (the runs of one seed share
  the task's demo/dev/test split): the interval of the differences ``method - reference``
  over the seeds where both have a test score. The method **wins** when the whole interval is
  above 0, **loses** when it is below, **ties** when it covers 0 (the difference is within
  noise), and is **undecided** with fewer than two paired seeds. The mean difference over tasks
  (the tasks both have) gets the combined interval above and the same verdict.

Each verdict is a test at the 95% level: where there is no real difference, about one
comparison in twenty still shows a win or a loss by chance (no correction for multiple
comparisons is made; the report says so).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from izero.errors import ResultsError
from izero.results.analysis import best_so_far_curves, latest_summaries

#: Confidence level of every interval of the comparison.
CONFIDENCE = 0.95
#: Reference method of the wins/ties/losses when it is in the results and none is given.
DEFAULT_REFERENCE = "instructzero"
#: Verdicts of a comparison against the reference.
VERDICTS = ("win", "tie", "loss", "undecided")


@dataclasses.dataclass(frozen=True)
class Interval:
    """A mean and its 95% interval.

    Attributes:
        mean: the estimate (None when there is no value at all).
        lo, hi: the interval's bounds; None when it is undefined (a single seed).
        n: values behind it (seeds, or seed-runs summed over tasks).
    """

    mean: float | None
    lo: float | None
    hi: float | None
    n: int

    @property
    def defined(self) -> bool:
        return self.lo is not None and self.hi is not None

    def covers(self, value: float) -> bool:
        """Whether ``value`` lies in the interval (False when it is undefined)."""
        return self.defined and self.lo <= value <= self.hi  # type: ignore[operator]


def _t_quantile(df: float, confidence: float) -> float:
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2.0, df))


def t_interval(values: Sequence[float], *, confidence: float = CONFIDENCE) -> Interval:
    """Mean of ``values`` (``n``) with its Student-t interval; undefined for ``n < 2``."""
    return combined_interval([values], confidence=confidence)


def combined_interval(
    groups: Sequence[Sequence[float]], *, confidence: float = CONFIDENCE
) -> Interval:
    """Mean of the group means, with a t-interval that treats groups as fixed.

    ``groups``: ``T`` lists of values (e.g. per task, the test scores of its seeds). The
    estimate is ``mean_t(mean(group_t))``; its variance ``sum_t var_t / n_t / T^2`` (sample
    variances), with Welch-Satterthwaite degrees of freedom. Empty groups are ignored; the
    interval is undefined when any group has fewer than two values. One group gives the
    ordinary t-interval (``n - 1`` degrees of freedom).
    """
    arrays = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not arrays:
        return Interval(None, None, None, 0)
    n = sum(a.size for a in arrays)
    mean = float(np.mean([a.mean() for a in arrays]))
    if any(a.size < 2 for a in arrays):
        return Interval(mean, None, None, n)
    v = np.array([a.var(ddof=1) / a.size for a in arrays])  # variance of each group's mean
    se = math.sqrt(float(v.sum())) / len(arrays)
    if se == 0.0:
        return Interval(mean, mean, mean, n)
    dof = float(v.sum() ** 2 / np.sum(v**2 / np.array([a.size - 1 for a in arrays])))
    half = _t_quantile(dof, confidence) * se
    return Interval(mean, mean - half, mean + half, n)


def verdict(diff: Interval) -> str:
    """``win``/``loss`` when the interval of ``method - reference`` lies above/below 0, ``tie``
    when it covers 0, ``undecided`` when it is undefined."""
    if not diff.defined:
        return "undecided"
    if diff.lo > 0:  # type: ignore[operator]
        return "win"
    if diff.hi < 0:  # type: ignore[operator]
        return "loss"
    return "tie"


@dataclasses.dataclass(frozen=True)
class TaskScore:
    """One method's test scores on one task: ``scores[i]`` is seed ``seeds[i]``'s."""

    task: str
    method: str
    seeds: tuple[int, ...]
    scores: tuple[float, ...]
    interval: Interval


@dataclasses.dataclass(frozen=True)
class PairedTask:
    """``method - reference`` on one task, paired over ``seeds`` (both have a test score)."""

    task: str
    method: str
    reference: str
    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    interval: Interval
    verdict: str


@dataclasses.dataclass(frozen=True)
class Versus:
    """One method against the reference over all tasks both have.

    Attributes:
        counts: verdict -> number of tasks (keys: :data:`VERDICTS`).
        interval: mean over those tasks of the per-task mean difference, combined interval.
        verdict: of ``interval`` (see :func:`verdict`).
        per_task: the per-task comparisons.
    """

    method: str
    reference: str
    counts: Mapping[str, int]
    interval: Interval
    verdict: str
    per_task: tuple[PairedTask, ...]


@dataclasses.dataclass(frozen=True)
class Comparison:
    """Everything the report says about methods.

    Attributes:
        methods: every method with a test score, sorted.
        tasks: every task with a test score, sorted.
        per_task: (task, method) -> its test scores and interval.
        per_method: method -> mean over its tasks and the combined interval.
        reference: the reference method (None with fewer than two methods).
        versus: each other method against the reference, in ``methods`` order.
        single_seed: some (task, method) has a single seed, so some intervals are undefined.
        confidence: the intervals' level.
    """

    methods: tuple[str, ...]
    tasks: tuple[str, ...]
    per_task: Mapping[tuple[str, str], TaskScore]
    per_method: Mapping[str, Interval]
    reference: str | None
    versus: tuple[Versus, ...]
    single_seed: bool
    confidence: float = CONFIDENCE


def seed_test_scores(summaries: pa.Table) -> dict[tuple[str, str], dict[int, float]]:
    """(task, method) -> {seed: test score} from the latest summary of each run; runs without
    a test score are left out."""
    out: dict[tuple[str, str], dict[int, float]] = {}
    for (task, method, seed), row in latest_summaries(summaries).items():
        if row["test_score"] is not None and math.isfinite(row["test_score"]):
            out.setdefault((task, method), {})[seed] = float(row["test_score"])
    return out


def pick_reference(methods: Sequence[str], reference: str | None = None) -> str | None:
    """The reference method: ``reference`` if given (it must be in ``methods``), else
    :data:`DEFAULT_REFERENCE` when present, else the first of ``methods`` in sorted order;
    None with fewer than two methods.

    Raises:
        ResultsError: ``reference`` is not one of ``methods``.
    """
    if reference is not None and reference not in methods:
        known = ", ".join(sorted(methods)) or "none"
        raise ResultsError(
            f"report reference: got {reference!r}; expected a method with test scores in these "
            f"results ({known}); pass --reference with one of them"
        )
    if len(methods) < 2:
        return None
    if reference is not None:
        return reference
    return DEFAULT_REFERENCE if DEFAULT_REFERENCE in methods else sorted(methods)[0]


def _paired(
    task: str, method: str, reference: str, mine: Mapping[int, float], ref: Mapping[int, float]
) -> PairedTask:
    seeds = tuple(sorted(set(mine) & set(ref)))
    diffs = tuple(mine[s] - ref[s] for s in seeds)
    interval = t_interval(diffs)
    return PairedTask(task, method, reference, seeds, diffs, interval, verdict(interval))


def compare_methods(
    summaries: pa.Table, *, reference: str | None = None, confidence: float = CONFIDENCE
) -> Comparison:
    """The comparison of every method in ``summaries`` (see the module docstring).

    Args:
        summaries: the summaries table of one or more sweeps.
        reference: the method the others are compared with; None = :func:`pick_reference`.
        confidence: the level of every interval, in (0, 1).

    Raises:
        ResultsError: ``reference`` has no test score in ``summaries``, or a bad ``confidence``.
    """
    if not 0.0 < confidence < 1.0:
        raise ResultsError(f"comparison confidence: got {confidence!r}; expected in (0, 1)")
    scores = seed_test_scores(summaries)
    methods = tuple(sorted({m for _, m in scores}))
    tasks = tuple(sorted({t for t, _ in scores}))
    ref = pick_reference(methods, reference)
    per_task: dict[tuple[str, str], TaskScore] = {}
    for (task, method), by_seed in sorted(scores.items()):
        seeds = tuple(sorted(by_seed))
        values = tuple(by_seed[s] for s in seeds)
        per_task[(task, method)] = TaskScore(
            task, method, seeds, values, t_interval(values, confidence=confidence)
        )
    per_method = {
        m: combined_interval(
            [per_task[(t, m)].scores for t in tasks if (t, m) in per_task], confidence=confidence
        )
        for m in methods
    }
    versus = []
    if ref is not None:
        for method in methods:
            if method == ref:
                continue
            pairs = tuple(
                _paired(t, method, ref, scores[(t, method)], scores[(t, ref)])
                for t in tasks
                if (t, method) in scores and (t, ref) in scores
            )
            pairs = tuple(p for p in pairs if p.seeds)
            counts = {v: sum(p.verdict == v for p in pairs) for v in VERDICTS}
            overall = combined_interval([p.diffs for p in pairs], confidence=confidence)
            versus.append(Versus(method, ref, counts, overall, verdict(overall), pairs))
    return Comparison(
        methods=methods,
        tasks=tasks,
        per_task=per_task,
        per_method=per_method,
        reference=ref,
        versus=tuple(versus),
        single_seed=any(len(s.seeds) < 2 for s in per_task.values()),
        confidence=confidence,
    )


def _signed(x: float) -> str:
    """``+0.123``; a value that rounds to zero reads ``+0.000``, never ``-0.000``."""
    return f"{x if round(x, 3) else 0.0:+.3f}"


def _n(count: int, word: str, plural: str | None = None) -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def noise_sentences(comparison: Comparison) -> list[str]:
    """Plain sentences on what the comparison can and cannot tell."""
    c = comparison
    level = f"{100 * c.confidence:g}%"
    out: list[str] = []
    if not c.methods:
        return ["No run has a test score yet: nothing to compare."]
    out.append(
        f"Intervals are {level} Student-t intervals over seeds. A method's mean over tasks is "
        "the mean of its per-task means; its interval takes the tasks as fixed and the seeds "
        "as the noise."
    )
    if c.single_seed:
        out.append(
            "Some task has a single seed for some method: its interval is undefined (n/a), and "
            "a difference there cannot be told from noise. Run more seeds (at least 3, better 5)."
        )
    if c.reference is None:
        out.append(f"Only one method ({c.methods[0]}): nothing to compare it with.")
        return out
    out.append(
        f"Wins, ties and losses against {c.reference} are paired over seeds (the runs of one "
        f"seed share the task's examples): a tie means the {level} interval of the difference "
        "covers 0, i.e. the difference is within noise. At this level about one comparison in "
        "twenty (a task, or a method's mean over tasks) shows a win or a loss by chance alone: "
        "the more tasks and methods, the more such chance verdicts."
    )
    within = []
    for v in c.versus:
        n_tasks = len(v.per_task)
        counts = v.counts
        tally = (
            f"{_n(counts['win'], 'win')}, {_n(counts['tie'], 'tie')}, "
            f"{_n(counts['loss'], 'loss', 'losses')}"
            + (f", {counts['undecided']} undecided" if counts["undecided"] else "")
            + f" over {_n(n_tasks, 'task')}"
        )
        d = v.interval
        if d.mean is None:
            out.append(f"{v.method} shares no task and seed with {v.reference}: not compared.")
        elif not d.defined:
            out.append(
                f"{v.method} against {v.reference}: mean difference {_signed(d.mean)} ({tally}); "
                "its interval is undefined (some task has a single paired seed), so it cannot be "
                "told from noise."
            )
        else:
            bounds = f"[{_signed(d.lo or 0.0)}, {_signed(d.hi or 0.0)}]"  # defined here
            if v.verdict == "tie":
                within.append(v.method)
                out.append(
                    f"{v.method} against {v.reference}: mean difference {_signed(d.mean)} "
                    f"{bounds}, within noise ({tally})."
                )
            else:
                word = "higher" if v.verdict == "win" else "lower"
                out.append(
                    f"{v.method} scores {word} than {v.reference} beyond noise: mean difference "
                    f"{_signed(d.mean)} {bounds} ({tally})."
                )
    if within and len(within) == len(c.versus):
        out.append(
            f"No method differs from {c.reference} beyond noise on the mean over tasks: these "
            "results do not tell the methods apart."
        )
    return out


@dataclasses.dataclass(frozen=True)
class MethodCurve:
    """Best dev score so far against evaluations for one method, over tasks and seeds.

    Arrays are ``n_evals`` long; ``x`` counts evaluations from 1. ``mean`` is the mean over
    tasks of the mean over seeds (NaN where no run reached that evaluation); ``lo``/``hi`` its
    interval (:func:`combined_interval`; NaN where undefined). ``runs``: runs behind the curve.
    """

    method: str
    x: np.ndarray
    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    runs: int


def method_curves(
    evaluations: pa.Table, *, confidence: float = CONFIDENCE
) -> dict[str, MethodCurve]:
    """Method -> its :class:`MethodCurve` (best dev score so far, averaged over tasks and seeds)."""
    curves = best_so_far_curves(evaluations)
    by_method: dict[str, dict[str, np.ndarray]] = {}
    for task, methods in curves.items():
        for method, mat in methods.items():
            by_method.setdefault(method, {})[task] = mat  # seeds x n_evals
    out: dict[str, MethodCurve] = {}
    for method, per_task in sorted(by_method.items()):
        width = max(m.shape[1] for m in per_task.values())
        mean, lo, hi = (np.full(width, np.nan) for _ in range(3))
        for j in range(width):
            groups = []
            for mat in per_task.values():
                if j < mat.shape[1]:
                    col = mat[:, j]
                    groups.append(col[~np.isnan(col)])
            iv = combined_interval(groups, confidence=confidence)
            if iv.mean is not None:
                mean[j] = iv.mean
            if iv.defined:
                lo[j], hi[j] = iv.lo, iv.hi
        runs = sum(m.shape[0] for m in per_task.values())
        out[method] = MethodCurve(method, np.arange(1, width + 1), mean, lo, hi, runs)
    return out
