"""PNG plots of a sweep, drawn on a private Agg canvas.

Nothing here touches pyplot or the global matplotlib backend: each plot builds a
``matplotlib.figure.Figure`` with its own ``FigureCanvasAgg`` (set inside the function, not at
import) and returns the PNG bytes, so the caller decides where they go (any pyarrow.fs).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from izero.errors import ResultsError
from izero.results.analysis import best_so_far_curves, call_rate, request_times
from izero.results.comparison import CONFIDENCE, method_curves

#: PNG resolution (dots per inch).
PLOT_DPI = 100
#: Panels per row in the best-dev plot.
PLOT_COLUMNS = 4


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
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="small")
        else:
            ax.text(0.5, 0.5, "no scored evaluations", ha="center", transform=ax.transAxes)
    for j in range(len(tasks), nrows * ncols):
        axes[j // ncols][j % ncols].set_visible(False)
    fig.tight_layout()
    return _png(fig)


def plot_method_curves(evaluations: pa.Table, *, confidence: float = CONFIDENCE) -> bytes:
    """PNG of best dev score so far against evaluations, one line per method.

    Each line is the mean over tasks of the mean over seeds; the band is its interval
    (:func:`izero.results.comparison.method_curves`; absent where a task has one seed).
    """
    curves = method_curves(evaluations, confidence=confidence)
    if not curves:
        raise ResultsError("method plot: no evaluations to plot")
    colors = _method_colors(list(curves))
    fig = _new_figure(7.0, 4.0)
    ax = fig.subplots()
    for method, c in curves.items():
        if np.all(np.isnan(c.mean)):
            continue
        ax.plot(c.x, c.mean, color=colors[method], label=f"{method} ({c.runs} runs)")
        if not np.all(np.isnan(c.lo)):
            ax.fill_between(c.x, c.lo, c.hi, color=colors[method], alpha=0.15, linewidth=0)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best dev score so far")
    ax.set_title(f"mean over tasks and seeds, band: {100 * confidence:g}% interval", fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no scored evaluations", ha="center", transform=ax.transAxes)
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
                label="requests of failed calls/min",
            )
    if limit_rpm is not None:
        ax.axhline(limit_rpm, color="black", linestyle="--", label=f"limit {limit_rpm:g}/min")
    ax.set_xlabel("minutes since first request")
    ax.set_ylabel("requests per minute")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    return _png(fig)
