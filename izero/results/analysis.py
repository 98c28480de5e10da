"""Numbers behind the report: per-method aggregates, best-so-far curves, request rates.

Pure functions of the results tables (``pyarrow.Table``), no I/O and no plotting.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from izero.errors import ResultsError
from izero.results.provenance import Provenance

#: Provenance config paths searched for the black-box requests-per-minute limit, in order.
RPM_CONFIG_PATHS: tuple[tuple[str, ...], ...] = (
    ("blackbox", "rpm"),
    ("blackbox", "limits", "rpm"),
    ("blackbox", "rate_limit", "rpm"),
    ("blackbox", "requests_per_minute"),
)
#: Longest bin (seconds) of the call-rate plot; shorter sweeps use shorter bins.
MAX_RATE_BIN_S = 60.0
#: Shortest bin (seconds) of the call-rate plot.
MIN_RATE_BIN_S = 1.0
#: Bins aimed for in the call-rate plot when the sweep is shorter than that many minutes.
TARGET_RATE_BINS = 30


@dataclasses.dataclass(frozen=True)
class MethodResult:
    """One (task, method) line of the report.

    Attributes:
        task, method: the row's key.
        seeds: seeds present (with a summary or with evaluations).
        dev_mean, dev_std: best dev score over seeds (None when no seed has one).
        test_mean, test_std: test score over the seeds that have one (None when none has).
        n_test_seeds: seeds with a test score.
        best_instruction, best_seed, best_dev, best_test: the instruction of the seed with the
            highest dev score (ties: lowest seed), its dev and test score.
    """

    task: str
    method: str
    seeds: tuple[int, ...]
    dev_mean: float | None
    dev_std: float | None
    test_mean: float | None
    test_std: float | None
    n_test_seeds: int
    best_instruction: str | None
    best_seed: int | None
    best_dev: float | None
    best_test: float | None


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std


def latest_summaries(summaries: pa.Table) -> dict[tuple[str, str, int], dict[str, Any]]:
    """(task, method, seed) -> summary row; a run summarised twice keeps its latest row."""
    out: dict[tuple[str, str, int], dict[str, Any]] = {}
    for row in summaries.to_pylist():
        key = (row["task"], row["method"], row["seed"])
        if key not in out or row["finished_at"] >= out[key]["finished_at"]:
            out[key] = row
    return out


def _best_from_evaluations(
    evaluations: pa.Table,
) -> dict[tuple[str, str, int], tuple[float | None, str | None]]:
    """(task, method, seed) -> (best dev score so far, its instruction) from evaluations."""
    cols = evaluations.select(["task", "method", "seed", "eval_index", "instruction", "dev_score"])
    best: dict[tuple[str, str, int], tuple[float | None, str | None]] = {}
    for row in cols.to_pylist():  # sorted by eval_index within a run
        key = (row["task"], row["method"], row["seed"])
        score = row["dev_score"]
        current = best.get(key)
        if current is None:
            best[key] = (score, row["instruction"] if score is not None else None)
        elif score is not None and (current[0] is None or score > current[0]):
            best[key] = (score, row["instruction"])
    return best


def method_results(*, summaries: pa.Table, evaluations: pa.Table) -> list[MethodResult]:
    """Aggregate runs into one :class:`MethodResult` per (task, method), sorted by both."""
    runs: dict[tuple[str, str, int], dict[str, Any]] = {}
    for key, (dev, instruction) in _best_from_evaluations(evaluations).items():
        runs[key] = {"dev": dev, "test": None, "instruction": instruction}
    for key, row in latest_summaries(summaries).items():
        runs[key] = {
            "dev": row["best_dev_score"],
            "test": row["test_score"],
            "instruction": row["best_instruction"],
        }
    grouped: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for (task, method, seed), run in runs.items():
        grouped.setdefault((task, method), []).append((seed, run))
    out = []
    for (task, method), items in sorted(grouped.items()):
        items.sort(key=lambda x: x[0])
        devs = [r["dev"] for _, r in items if r["dev"] is not None]
        tests = [r["test"] for _, r in items if r["test"] is not None]
        dev_mean, dev_std = _mean_std(devs)
        test_mean, test_std = _mean_std(tests)
        with_dev = [(s, r) for s, r in items if r["dev"] is not None]
        best_seed, best = (
            max(with_dev, key=lambda x: (x[1]["dev"], -x[0])) if with_dev else (None, None)
        )
        out.append(
            MethodResult(
                task=task,
                method=method,
                seeds=tuple(s for s, _ in items),
                dev_mean=dev_mean,
                dev_std=dev_std,
                test_mean=test_mean,
                test_std=test_std,
                n_test_seeds=len(tests),
                best_instruction=None if best is None else best["instruction"],
                best_seed=best_seed,
                best_dev=None if best is None else best["dev"],
                best_test=None if best is None else best["test"],
            )
        )
    return out


def best_so_far_curves(
    evaluations: pa.Table,
) -> dict[str, dict[str, np.ndarray]]:
    """Best dev score so far per run, grouped as task -> method -> ``seeds x n_evals`` array.

    Entry ``[i, j]`` is the best dev score of seed ``i`` among its first ``j + 1`` evaluations
    (NaN before its first scored evaluation and after its last evaluation).
    """
    cols = evaluations.select(["task", "method", "seed", "eval_index", "dev_score"]).to_pylist()
    runs: dict[tuple[str, str, int], list[float]] = {}
    for row in cols:
        score = row["dev_score"]
        runs.setdefault((row["task"], row["method"], row["seed"]), []).append(
            math.nan if score is None else score
        )
    grouped: dict[str, dict[str, list[np.ndarray]]] = {}
    for (task, method, _seed), scores in sorted(runs.items()):
        arr = np.asarray(scores, dtype=np.float64)
        filled = np.where(np.isnan(arr), -np.inf, arr)
        best = np.maximum.accumulate(filled)
        best[np.isneginf(best)] = np.nan
        grouped.setdefault(task, {}).setdefault(method, []).append(best)
    out: dict[str, dict[str, np.ndarray]] = {}
    for task, methods in grouped.items():
        out[task] = {}
        for method, curves in methods.items():
            width = max(c.size for c in curves)
            mat = np.full((len(curves), width), np.nan)
            for i, c in enumerate(curves):
                mat[i, : c.size] = c
            out[task][method] = mat
    return out


def to_seconds(column: pa.ChunkedArray) -> np.ndarray:
    """POSIX seconds of a ``timestamp[us]`` column (``n``)."""
    values = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return values.astype(np.float64) / 1e6  # timestamp[us] -> POSIX seconds


def request_times(calls: pa.Table) -> np.ndarray:
    """POSIX seconds of every HTTP request sent (cached calls send none).

    A call with ``attempts`` requests spreads them evenly from ``started_at`` towards
    ``finished_at`` (the first at ``started_at``). Shape: ``n_requests``, sorted.
    """
    if calls.num_rows == 0:
        return np.zeros(0)
    start = to_seconds(calls.column("started_at"))
    end = to_seconds(calls.column("finished_at"))
    attempts = calls.column("attempts").to_numpy(zero_copy_only=False).astype(np.int64)
    cached = calls.column("cached").to_numpy(zero_copy_only=False).astype(bool)
    attempts = np.where(cached, 0, np.maximum(attempts, 0))
    idx = np.repeat(np.arange(start.size), attempts)
    if idx.size == 0:
        return np.zeros(0)
    first = np.cumsum(attempts) - attempts
    k = np.arange(idx.size) - first[idx]
    times = start[idx] + (end[idx] - start[idx]) * k / attempts[idx]
    return np.sort(times)


def call_rate(
    times: np.ndarray, *, bin_s: float | None = None, origin: float | None = None
) -> tuple[np.ndarray, np.ndarray, float]:
    """Requests per minute in consecutive bins.

    Args:
        times: POSIX seconds of the requests (``n``).
        bin_s: bin width in seconds; None = the sweep's span / :data:`TARGET_RATE_BINS`,
            clipped to [:data:`MIN_RATE_BIN_S`, :data:`MAX_RATE_BIN_S`].
        origin: time of the first bin's left edge; None = the first request.

    Returns:
        ``(left_edges_min, rate_per_min, bin_s)``: bin left edges in minutes since ``origin``
        (``bins``), requests per minute in each bin (``bins``), and the bin width used.
    """
    if times.size == 0:
        return np.zeros(0), np.zeros(0), bin_s or MAX_RATE_BIN_S
    t0 = float(times.min()) if origin is None else origin
    span = max(float(times.max()) - t0, 0.0)
    if bin_s is None:
        bin_s = min(MAX_RATE_BIN_S, max(MIN_RATE_BIN_S, span / TARGET_RATE_BINS))
    if bin_s <= 0:
        raise ResultsError(f"call-rate bin width: got {bin_s} s; expected a positive number")
    # The last request at the right edge counts in the last bin (no near-empty extra bin).
    n_bins = max(1, math.ceil(span / bin_s))
    counts = np.bincount(
        np.clip(((times - t0) // bin_s).astype(np.int64), 0, n_bins - 1), minlength=n_bins
    )
    edges_min = np.arange(n_bins) * bin_s / 60.0
    return edges_min, counts * (60.0 / bin_s), bin_s


def rate_limit_from_provenance(provenance: Provenance | None) -> float | None:
    """The requests-per-minute limit in the provenance config, or None (see RPM_CONFIG_PATHS)."""
    if provenance is None:
        return None
    for path in RPM_CONFIG_PATHS:
        node: Any = provenance.config
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, (int, float)) and not isinstance(node, bool) and node > 0:
            return float(node)
    return None
