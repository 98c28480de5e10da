"""A sweep's report: per-task table of methods and PNG plots, as Markdown or HTML.

The report holds:

- the method comparison (:mod:`izero.results.comparison`): per task, each method's mean test
  score over seeds with a 95% Student-t interval; per method, the mean over tasks with its
  interval; wins/ties/losses against a reference method (``reference``, default
  ``instructzero`` when present), paired over seeds, where a tie is a difference within noise;
  and sentences saying which differences are within noise;
- a per-task table: for each method, dev and test score as mean ± standard deviation over
  seeds (sample std, ``ddof=1``; 0 for a single seed), and the best instruction (the seed
  with the highest dev score);
- a per-method overview: mean test score over tasks and the number of tasks each method wins;
- ``plots/best_dev_vs_evaluations.png``: best dev score so far against the number of
  evaluations, one panel per task, one line per method (mean over seeds, band = min..max);
- ``plots/best_dev_by_method.png``: best dev score so far against evaluations, one line per
  method (mean over tasks and seeds, band = 95% interval);
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
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from izero.errors import ResultsError
from izero.results.analysis import (
    MethodResult,
    method_results,
    rate_limit_from_provenance,
    request_times,
    to_seconds,
)
from izero.results.comparison import Comparison, Interval, compare_methods, noise_sentences
from izero.results.plots import plot_best_dev, plot_call_rate, plot_method_curves
from izero.results.provenance import Provenance
from izero.results.store import ResultsStore

logger = logging.getLogger(__name__)

#: Report formats.
FORMATS = ("md", "html")
#: Folder under the report directory holding the PNG plots.
PLOTS_DIR = "plots"
#: File name of the best-dev-score plot.
BEST_DEV_PLOT = "best_dev_vs_evaluations.png"
#: File name of the per-method best-dev plot.
METHOD_PLOT = "best_dev_by_method.png"
#: File name of the call-rate plot.
CALL_RATE_PLOT = "calls_per_minute.png"
#: Default report folder under the results root.
DEFAULT_REPORT_DIR = "report"
#: Decimals shown for scores.
SCORE_DECIMALS = 3
#: Longest instruction shown in a table cell (characters).
MAX_INSTRUCTION_CHARS = 300


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`build_report` wrote.

    Attributes:
        path: the report file (``report.md`` or ``report.html``) on ``filesystem``.
        plots: paths of the PNG files written.
        results: the per-(task, method) lines of the table.
        filesystem: the filesystem the paths live on.
        comparison: the method comparison (test scores, intervals, verdicts).
    """

    path: str
    plots: tuple[str, ...]
    results: tuple[MethodResult, ...]
    filesystem: pafs.FileSystem
    comparison: Comparison


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
    """Per method: tasks, mean of per-task test means, tasks where its test mean is the highest
    (whether or not that is beyond noise: the comparison section says)."""
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
_OVERVIEW_HEADER = ["method", "tasks", "mean dev", "mean test", "tasks with the top test mean"]

#: How each verdict against the reference reads in the report.
VERDICT_TEXT = {
    "win": "higher, beyond noise",
    "tie": "within noise",
    "loss": "lower, beyond noise",
    "undecided": "interval undefined",
}


def _fmt_signed(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value if round(value, SCORE_DECIMALS) else 0.0:+.{SCORE_DECIMALS}f}"


def _fmt_interval(iv: Interval, *, signed: bool = False) -> str:
    """``mean [lo, hi]``, or ``mean [n/a]`` when the interval is undefined."""
    f = _fmt_signed if signed else _fmt
    if iv.mean is None:
        return "n/a"
    bounds = f"[{f(iv.lo)}, {f(iv.hi)}]" if iv.defined else "[n/a]"
    return f"{f(iv.mean)} {bounds}"


@dataclasses.dataclass(frozen=True)
class _Section:
    title: str
    paragraphs: list[str]
    header: list[str]
    rows: list[list[str]]


def _comparison_sections(c: Comparison) -> list[_Section]:
    """The method comparison as report sections (tables and sentences)."""
    level = f"{100 * c.confidence:g}%"
    if not c.methods:
        return [_Section("Method comparison", noise_sentences(c), [], [])]
    header = ["task", *c.methods]
    rows = []
    for task in c.tasks:
        row = [task]
        for m in c.methods:
            ts = c.per_task.get((task, m))
            row.append("n/a" if ts is None else f"{_fmt_interval(ts.interval)} n={len(ts.seeds)}")
        rows.append(row)
    rows.append(["mean over tasks", *(_fmt_interval(c.per_method[m]) for m in c.methods)])
    sections = [
        _Section(
            "Method comparison: test score",
            [f"Mean test score over seeds per task, [{level} interval], n = seeds."],
            header,
            rows,
        )
    ]
    if c.reference is not None:
        vs_header = [
            "method",
            "tasks",
            f"mean difference to {c.reference} [{level}]",
            "wins",
            "ties",
            "losses",
            "undecided",
            "verdict",
        ]
        vs_rows = [
            [
                v.method,
                str(len(v.per_task)),
                _fmt_interval(v.interval, signed=True),
                *(str(v.counts[k]) for k in ("win", "tie", "loss", "undecided")),
                VERDICT_TEXT[v.verdict],
            ]
            for v in c.versus
        ]
        sections.append(
            _Section(
                f"Against {c.reference}",
                [
                    "Test score of each method minus the reference's, paired over seeds; a tie "
                    "is a difference whose interval covers 0."
                ],
                vs_header,
                vs_rows,
            )
        )
        others = [v.method for v in c.versus]
        by_task = {(p.task, v.method): p for v in c.versus for p in v.per_task}
        task_rows = []
        for task in c.tasks:
            row = [task]
            for m in others:
                p = by_task.get((task, m))
                row.append(
                    "n/a" if p is None else f"{_fmt_interval(p.interval, signed=True)} {p.verdict}"
                )
            task_rows.append(row)
        if others:
            sections.append(
                _Section(
                    f"Per task against {c.reference}",
                    [f"Difference to {c.reference} [{level} interval over paired seeds], verdict."],
                    ["task", *others],
                    task_rows,
                )
            )
    sections.append(_Section("What is within noise", noise_sentences(c), [], []))
    return sections


@dataclasses.dataclass(frozen=True)
class _Facts:
    title: str
    lines: list[tuple[str, str]]
    comparison: list[_Section]
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
    for sec in f.comparison:
        parts += ["", f"## {sec.title}", ""]
        if sec.header:
            parts += [*sec.paragraphs, "", _md_table(sec.header, sec.rows)]
        else:
            parts += [f"- {p}" for p in sec.paragraphs]
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
    comparison = ""
    for sec in f.comparison:
        comparison += f"<h2>{html.escape(sec.title)}</h2>\n"
        if sec.header:
            comparison += "".join(f"<p>{html.escape(p)}</p>\n" for p in sec.paragraphs)
            comparison += _html_table(sec.header, sec.rows) + "\n"
        else:
            items_ = "".join(f"<li>{html.escape(p)}</li>\n" for p in sec.paragraphs)
            comparison += f"<ul>\n{items_}</ul>\n"
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
        f"<title>{html.escape(f.title)}</title><style>{_CSS}</style></head><body>\n"
        f"<h1>{html.escape(f.title)}</h1>\n<ul>\n{items}</ul>\n{comparison}"
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
            start = float(to_seconds(calls.column("started_at")).min())
            end = float(to_seconds(calls.column("finished_at")).max())
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
    reference: str | None = None,
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
        reference: the method the others are compared with (wins/ties/losses); None =
            ``instructzero`` when it has test scores, else the first method by name.

    Raises:
        ResultsError: unknown format, no results at ``results``, or a ``reference`` without
            test scores there.
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
    comparison = compare_methods(summaries, reference=reference)  # refuses a bad reference
    provenance = store.read_provenance()
    limit = rate_limit_rpm if rate_limit_rpm is not None else rate_limit_from_provenance(provenance)
    fs, folder = _resolve_out(store, out)

    plots: list[tuple[str, str]] = []
    written: list[str] = []
    notes: list[str] = []
    if evaluations.num_rows:
        rel = f"{PLOTS_DIR}/{METHOD_PLOT}"
        _write(fs, f"{folder}/{rel}", plot_method_curves(evaluations))
        plots.append(("Best dev score against evaluations, per method", rel))
        written.append(f"{folder}/{rel}")
        rel = f"{PLOTS_DIR}/{BEST_DEV_PLOT}"
        _write(fs, f"{folder}/{rel}", plot_best_dev(evaluations))
        plots.append(("Best dev score against evaluations, per task", rel))
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
        comparison=_comparison_sections(comparison),
        overview=_overview(results_list),
        table=_table_rows(results_list),
        plots=plots,
        notes=notes,
    )
    text = _render_md(facts) if fmt == "md" else _render_html(facts)
    path = f"{folder}/report.{fmt}"
    _write(fs, path, text.encode("utf-8"))
    logger.info("report written to %s", path)
    return Report(
        path=path,
        plots=tuple(written),
        results=tuple(results_list),
        filesystem=fs,
        comparison=comparison,
    )
