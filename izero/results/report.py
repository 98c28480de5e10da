"""A sweep's report: per-task table of methods and PNG plots, as Markdown or HTML.

The report holds:

- a per-task table: for each method, dev and test score as mean ± standard deviation over
  seeds (sample std, ``ddof=1``; 0 for a single seed), and the best instruction (the seed
  with the highest dev score);
- a per-method overview: mean test score over tasks and the number of tasks each method wins;
- ``plots/best_dev_vs_evaluations.png``: best dev score so far against the number of
  evaluations, one panel per task, one line per method (mean over seeds, band = min..max);
- ``plots/calls_per_minute.png``: black-box requests per minute over the sweep against the
  rate limit (from the argument, or the provenance config ``blackbox.rpm``).

Runs that have evaluations but no summary yet (an unfinished sweep) appear with their best
dev score so far and no test score. Plots are drawn on a private Agg canvas: nothing touches
the global matplotlib backend or pyplot state.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from izero.errors import ResultsError
from izero.results.provenance import Provenance
from izero.results.store import ResultsStore

logger = logging.getLogger(__name__)

#: Report formats.
FORMATS = ("md", "html")
#: Folder under the report directory holding the PNG plots.
PLOTS_DIR = "plots"
#: File name of the best-dev-score plot.
BEST_DEV_PLOT = "best_dev_vs_evaluations.png"
#: File name of the call-rate plot.
CALL_RATE_PLOT = "calls_per_minute.png"
#: Default report folder under the results root.
DEFAULT_REPORT_DIR = "report"
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
#: PNG resolution (dots per inch).
PLOT_DPI = 100
#: Panels per row in the best-dev plot.
PLOT_COLUMNS = 4
#: Decimals shown for scores.
SCORE_DECIMALS = 3
#: Longest instruction shown in a table cell (characters).
MAX_INSTRUCTION_CHARS = 300


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


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`build_report` wrote.

    Attributes:
        path: the report file (``report.md`` or ``report.html``) on ``filesystem``.
        plots: paths of the PNG files written.
        results: the per-(task, method) lines of the table.
        filesystem: the filesystem the paths live on.
    """

    path: str
    plots: tuple[str, ...]
    results: tuple[MethodResult, ...]
    filesystem: pafs.FileSystem


# --------------------------------------------------------------------------- statistics


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=np.float64)
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return float(arr.mean()), std


def _latest_summaries(summaries: pa.Table) -> dict[tuple[str, str, int], dict[str, Any]]:
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
    for key, row in _latest_summaries(summaries).items():
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


def _to_seconds(column: pa.ChunkedArray) -> np.ndarray:
    values = column.cast(pa.int64()).to_numpy(zero_copy_only=False)
    return values.astype(np.float64) / 1e6  # timestamp[us] -> POSIX seconds


def request_times(calls: pa.Table) -> np.ndarray:
    """POSIX seconds of every HTTP request sent (cached calls send none).

    A call with ``attempts`` requests spreads them evenly from ``started_at`` towards
    ``finished_at`` (the first at ``started_at``). Shape: ``n_requests``, sorted.
    """
    if calls.num_rows == 0:
        return np.zeros(0)
    start = _to_seconds(calls.column("started_at"))
    end = _to_seconds(calls.column("finished_at"))
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


# --------------------------------------------------------------------------- plots


def _new_figure(width_in: float, height_in: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=PLOT_DPI)
    FigureCanvasAgg(fig)  # private Agg canvas: no pyplot, no global backend change
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PLOT_DPI, bbox_inches="tight")
    return buf.getvalue()


def _method_colors(methods: Sequence[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(sorted(methods))}


def plot_best_dev(evaluations: pa.Table) -> bytes:
    """PNG of best dev score so far against number of evaluations, per task and method."""
    curves = best_so_far_curves(evaluations)
    tasks = sorted(curves)
    if not tasks:
        raise ResultsError("best-dev plot: no evaluations to plot")
    methods = sorted({m for t in curves.values() for m in t})
    colors = _method_colors(methods)
    ncols = min(PLOT_COLUMNS, len(tasks))
    nrows = math.ceil(len(tasks) / ncols)
    fig = _new_figure(4.0 * ncols, 3.0 * nrows)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for i, task in enumerate(tasks):
        ax = axes[i // ncols][i % ncols]
        for method in sorted(curves[task]):
            mat = curves[task][method]
            x = np.arange(1, mat.shape[1] + 1)
            valid = ~np.all(np.isnan(mat), axis=0)
            if not valid.any():
                continue
            sub = mat[:, valid]
            mean = np.nanmean(sub, axis=0)
            ax.plot(x[valid], mean, color=colors[method], label=f"{method} (n={mat.shape[0]})")
            if mat.shape[0] > 1:
                lo, hi = np.nanmin(sub, axis=0), np.nanmax(sub, axis=0)
                ax.fill_between(x[valid], lo, hi, color=colors[method], alpha=0.15, linewidth=0)
        ax.set_title(task)
        ax.set_xlabel("evaluations")
        ax.set_ylabel("best dev score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    for j in range(len(tasks), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    fig.tight_layout()
    return _png(fig)


def plot_call_rate(
    calls: pa.Table, *, limit_rpm: float | None, bin_s: float | None = None
) -> bytes:
    """PNG of black-box requests per minute over the sweep, with the rate limit if known."""
    times = request_times(calls)
    if times.size == 0:
        raise ResultsError("call-rate plot: no black-box requests were recorded")
    t0 = float(times.min())
    edges, rate, used_bin = call_rate(times, bin_s=bin_s, origin=t0)
    fig = _new_figure(8.0, 3.5)
    ax = fig.subplots()
    width_min = used_bin / 60.0
    ax.step(
        np.append(edges, edges[-1] + width_min),
        np.append(rate, rate[-1]),
        where="post",
        label=f"requests/min ({used_bin:g} s bins)",
    )
    status = calls.column("status").to_pylist()
    failed_mask = np.array([s != "ok" for s in status], dtype=bool)
    if failed_mask.any():
        failed = request_times(calls.filter(pa.array(failed_mask)))
        if failed.size:
            fe, fr, _ = call_rate(failed, bin_s=used_bin, origin=t0)
            ax.step(
                np.append(fe, fe[-1] + width_min),
                np.append(fr, fr[-1]),
                where="post",
                color="tab:red",
                label="failed calls/min",
            )
    if limit_rpm is not None:
        ax.axhline(limit_rpm, color="black", linestyle="--", label=f"limit {limit_rpm:g}/min")
    ax.set_xlabel("minutes since first request")
    ax.set_ylabel("requests per minute")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    return _png(fig)


# --------------------------------------------------------------------------- text


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.{SCORE_DECIMALS}f}"


def _fmt_ms(mean: float | None, std: float | None) -> str:
    return "n/a" if mean is None else f"{_fmt(mean)} ± {_fmt(std)}"


def _clip(text: str | None) -> str:
    if text is None:
        return ""
    text = " ".join(text.split())
    if len(text) > MAX_INSTRUCTION_CHARS:
        text = text[: MAX_INSTRUCTION_CHARS - 1] + "…"
    return text


def _overview(results: Sequence[MethodResult]) -> list[list[str]]:
    """Per method: tasks, mean of per-task test means, tasks won (highest test mean)."""
    by_task: dict[str, list[MethodResult]] = {}
    for r in results:
        by_task.setdefault(r.task, []).append(r)
    wins: dict[str, int] = {}
    for rs in by_task.values():
        scored = [r for r in rs if r.test_mean is not None]
        if scored:
            top = max(r.test_mean for r in scored)  # type: ignore[type-var]
            for r in scored:
                if r.test_mean == top:
                    wins[r.method] = wins.get(r.method, 0) + 1
    rows = []
    for method in sorted({r.method for r in results}):
        rs = [r for r in results if r.method == method]
        tests = [r.test_mean for r in rs if r.test_mean is not None]
        devs = [r.dev_mean for r in rs if r.dev_mean is not None]
        rows.append(
            [
                method,
                str(len(rs)),
                _fmt(float(np.mean(devs)) if devs else None),
                _fmt(float(np.mean(tests)) if tests else None),
                str(wins.get(method, 0)),
            ]
        )
    return rows


def _table_rows(results: Sequence[MethodResult]) -> list[list[str]]:
    rows = []
    for r in results:
        best = _clip(r.best_instruction)
        if r.best_seed is not None:
            best_note = f"seed {r.best_seed}: dev {_fmt(r.best_dev)}, test {_fmt(r.best_test)}"
        else:
            best_note = ""
        rows.append(
            [
                r.task,
                r.method,
                str(len(r.seeds)),
                _fmt_ms(r.dev_mean, r.dev_std),
                _fmt_ms(r.test_mean, r.test_std),
                best,
                best_note,
            ]
        )
    return rows


_TABLE_HEADER = [
    "task",
    "method",
    "seeds",
    "dev (mean ± std)",
    "test (mean ± std)",
    "best instruction",
    "best run",
]
_OVERVIEW_HEADER = ["method", "tasks", "mean dev", "mean test", "tasks won (test)"]


@dataclasses.dataclass(frozen=True)
class _Facts:
    title: str
    lines: list[tuple[str, str]]
    overview: list[list[str]]
    table: list[list[str]]
    plots: list[tuple[str, str]]  # (caption, relative path)
    notes: list[str]


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _render_md(f: _Facts) -> str:
    parts = [f"# {f.title}", ""]
    parts += [f"- **{k}**: {_md_cell(v)}" for k, v in f.lines]
    parts += ["", "## Methods over all tasks", "", _md_table(_OVERVIEW_HEADER, f.overview)]
    parts += ["", "## Per task", "", _md_table(_TABLE_HEADER, f.table), ""]
    parts += ["## Plots", ""]
    for caption, rel in f.plots:
        parts += [f"### {caption}", "", f"![{caption}]({rel})", ""]
    parts += [f"_{n}_" for n in f.notes]
    return "\n".join(parts).rstrip() + "\n"


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>\n" for row in rows
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>"


_CSS = (
    "body{font-family:sans-serif;max-width:1400px;margin:2em auto;padding:0 1em}"
    "table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;"
    "text-align:left;vertical-align:top}th{background:#f4f4f4}img{max-width:100%}"
)


def _render_html(f: _Facts) -> str:
    items = "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>\n" for k, v in f.lines)
    plots = "".join(
        f'<h3>{html.escape(c)}</h3>\n<img src="{html.escape(rel)}" alt="{html.escape(c)}">\n'
        for c, rel in f.plots
    )
    notes = "".join(f"<p><i>{html.escape(n)}</i></p>\n" for n in f.notes)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(f.title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(f.title)}</h1>\n<ul>\n{items}</ul>\n"
        f"<h2>Methods over all tasks</h2>\n{_html_table(_OVERVIEW_HEADER, f.overview)}\n"
        f"<h2>Per task</h2>\n{_html_table(_TABLE_HEADER, f.table)}\n"
        f"<h2>Plots</h2>\n{plots}{notes}</body></html>\n"
    )


# --------------------------------------------------------------------------- entry point


def _resolve_out(store: ResultsStore, out: str | Path | None) -> tuple[pafs.FileSystem, str]:
    if out is None:
        return store.fs, store.path(DEFAULT_REPORT_DIR)
    text = str(out)
    if "://" in text:
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise ResultsError(f"report output {text!r} cannot be opened ({exc})") from exc
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())


def _write(fs: pafs.FileSystem, path: str, data: bytes) -> None:
    fs.create_dir(path.rpartition("/")[0], recursive=True)
    with fs.open_output_stream(path) as sink:
        sink.write(data)


def _sweep_lines(
    store: ResultsStore,
    provenance: Provenance | None,
    evaluations: pa.Table,
    summaries: pa.Table,
    calls: pa.Table,
    limit_rpm: float | None,
) -> list[tuple[str, str]]:
    lines: list[tuple[str, str]] = [("results", store.uri)]
    if provenance is not None:
        if provenance.sweep:
            lines.append(("sweep", provenance.sweep))
        lines.append(("created", provenance.created_at))
        lines.append(("git commit", provenance.git_commit or "not from a git checkout"))
        lines.append(("host", provenance.hostname))
        lines.append(("seeds", ", ".join(str(s) for s in provenance.seeds)))
        versions = ", ".join(f"{k} {v}" for k, v in sorted(provenance.versions.items()) if v)
        lines.append(("versions", versions))
    lines.append(("finished", "yes" if store.is_finished() else "no (partial results)"))
    n_eval = evaluations.num_rows
    keys = ("task", "method", "seed", "instruction")
    unique = len(set(zip(*(evaluations.column(c).to_pylist() for c in keys), strict=True)))
    lines.append(("evaluations", f"{n_eval} ({unique} distinct instructions within runs)"))
    if calls.num_rows:
        sent = calls.filter(pc.invert(calls.column("cached")))
        requests = int(np.sum(sent.column("attempts").to_numpy(zero_copy_only=False)))
        n_cached = calls.num_rows - sent.num_rows
        n_429 = int(np.sum(np.array(sent.column("status").to_pylist()) == "429"))
        prompt = int(np.sum(calls.column("prompt_tokens").to_numpy(zero_copy_only=False)))
        completion = int(np.sum(calls.column("completion_tokens").to_numpy(zero_copy_only=False)))
        lines.append(
            (
                "black-box calls",
                f"{calls.num_rows} ({n_cached} from cache, {requests} HTTP requests, "
                f"{n_429} ended in 429)",
            )
        )
        lines.append(("tokens", f"{prompt} prompt + {completion} completion"))
        times = request_times(calls)
        if times.size > 1:
            start = float(_to_seconds(calls.column("started_at")).min())
            end = float(_to_seconds(calls.column("finished_at")).max())
            minutes = max(end - start, 1e-9) / 60.0
            mean_rate = times.size / minutes
            text = f"{mean_rate:.1f} requests/min over {minutes:.2f} min"
            if limit_rpm:
                text += f" = {100.0 * mean_rate / limit_rpm:.0f}% of the {limit_rpm:g}/min limit"
            lines.append(("request rate", text))
    if summaries.num_rows:
        cost = float(np.sum(summaries.column("total_cost_usd").to_numpy(zero_copy_only=False)))
        lines.append(("cost", f"${cost:.4f} (from run summaries)"))
    return lines


def build_report(
    results: str | Path | ResultsStore,
    *,
    out: str | Path | None = None,
    fmt: str = "md",
    rate_limit_rpm: float | None = None,
    rate_bin_s: float | None = None,
) -> Report:
    """Write the report of the sweep at ``results``.

    Args:
        results: a results URI/path or a :class:`ResultsStore`.
        out: folder (local path or ``pyarrow.fs`` URI) for ``report.md``/``report.html`` and
            ``plots/``; None = ``<results>/report``.
        fmt: ``"md"`` (Markdown) or ``"html"``.
        rate_limit_rpm: requests-per-minute limit drawn in the call-rate plot; None = read
            from the provenance config (``blackbox.rpm``); no line when neither has one.
        rate_bin_s: bin width of the call-rate plot in seconds; None = automatic.

    Raises:
        ResultsError: unknown format, or no results at ``results``.
    """
    if fmt not in FORMATS:
        raise ResultsError(f"report format: got {fmt!r}; expected one of {', '.join(FORMATS)}")
    if rate_limit_rpm is not None and not rate_limit_rpm > 0:
        raise ResultsError(
            f"report rate limit: got {rate_limit_rpm!r} requests/min; expected a positive number"
        )
    store = results if isinstance(results, ResultsStore) else ResultsStore(results)
    evaluations = store.read_evaluations()
    summaries = store.read_summaries()
    calls = store.read_calls()
    if evaluations.num_rows == 0 and summaries.num_rows == 0:
        raise ResultsError(
            f"no results at {store.uri}: no evaluations or summaries were found; check the "
            "path, or run a sweep first"
        )
    provenance = store.read_provenance()
    limit = rate_limit_rpm if rate_limit_rpm is not None else rate_limit_from_provenance(provenance)
    fs, folder = _resolve_out(store, out)

    plots: list[tuple[str, str]] = []
    written: list[str] = []
    notes: list[str] = []
    if evaluations.num_rows:
        rel = f"{PLOTS_DIR}/{BEST_DEV_PLOT}"
        _write(fs, f"{folder}/{rel}", plot_best_dev(evaluations))
        plots.append(("Best dev score against evaluations", rel))
        written.append(f"{folder}/{rel}")
    if request_times(calls).size:
        rel = f"{PLOTS_DIR}/{CALL_RATE_PLOT}"
        _write(fs, f"{folder}/{rel}", plot_call_rate(calls, limit_rpm=limit, bin_s=rate_bin_s))
        plots.append(("Black-box requests per minute", rel))
        written.append(f"{folder}/{rel}")
        if limit is None:
            notes.append("No rate limit known: pass --rpm-limit or set blackbox.rpm.")
    else:
        notes.append("No black-box requests were recorded: no call-rate plot.")

    results_list = method_results(summaries=summaries, evaluations=evaluations)
    title = "izero report"
    if provenance is not None and provenance.sweep:
        title += f": {provenance.sweep}"
    facts = _Facts(
        title=title,
        lines=[
            *_sweep_lines(store, provenance, evaluations, summaries, calls, limit),
            ("generated", dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")),
        ],
        overview=_overview(results_list),
        table=_table_rows(results_list),
        plots=plots,
        notes=notes,
    )
    text = _render_md(facts) if fmt == "md" else _render_html(facts)
    path = f"{folder}/report.{fmt}"
    _write(fs, path, text.encode("utf-8"))
    logger.info("report written to %s", path)
    return Report(path=path, plots=tuple(written), results=tuple(results_list), filesystem=fs)
