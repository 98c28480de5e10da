"""Method quality on the simulated world: every method under the same budget, side by side.

Each method runs as its own sweep through the public API (``izero.driver.run_sweep``) with one
config that differs only in ``methods`` (and a method's ``METHOD_OPTIONS``): the same built-in
tasks, seeds, budget (preset ``demo`` by default: 8 Sobol points + 3 rounds of 8 = 32 evaluations
a run, 10 dev and 20 test examples), the tiny random-weight generator on CPU and the simulated
OpenAI-compatible black box on 127.0.0.1 (same answer seed), priced like gpt-3.5-turbo so the
cost is not zero. One sweep per method gives each its own response cache, so its calls and cost
are what the method alone would pay (in one shared sweep, runs with identical requests, e.g. the
Sobol round that ``instructzero`` and ``random`` share, would be paid by whichever came first).

The results are read back with ``izero.results`` and compared with
``izero.results.comparison``: per method the mean test score over tasks with its 95% interval
(seeds are the noise, tasks fixed), and against a reference method (``--reference``, default
``instructzero``) wins/ties/losses per task paired over seeds, a tie being a difference whose
interval covers 0.

    python benchmarks/method_quality.py                       # 6 tasks x 5 seeds, every method
    python benchmarks/method_quality.py --methods instructzero,random --seeds 2 --tasks sum,diff

The last line printed is one JSON object with ``methods``, ``mean_test``, ``ci95`` (method ->
[lo, hi], null when undefined), ``calls`` (paid black-box calls) and ``cost_usd`` (method ->
number), the comparison against the reference under ``versus``, and ``on_task_share``
(method -> share of evaluated instructions that mention a keyword of their task).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch

#: The offline demo's tasks (jobs/configs/offline_demo.yaml): built-in, no data files.
DEFAULT_TASKS = (
    "sum",
    "diff",
    "first_word_letter",
    "letters_list",
    "word_sorting",
    "larger_animal",
)
DEFAULT_SEEDS = 5
DEFAULT_PRESET = "demo"
#: Prices of the simulated black box, USD per 1000 tokens: gpt-3.5-turbo-0125, the family of
#: the paper's black box.
PRICE_PROMPT_PER_1K = 0.0005
PRICE_COMPLETION_PER_1K = 0.0015
#: Method settings scaled to the tiny CPU generator (other methods run their defaults): the
#: features of INSTINCT's 10,000-point domain would take most of the benchmark's time on CPU.
METHOD_OPTIONS: dict[str, dict[str, object]] = {"instinct": {"domain_size": 1000}}
#: Requests per minute: high enough that the limit never paces this benchmark.
RPM = 60000.0
CONCURRENCY = 32
SIM_LATENCY_S = 0.02


def known_methods() -> list[str]:
    """Every method the installed izero registers and a sweep config accepts, in the
    registry's order (``izero.methods.METHOD_NAMES``, then the config's own list)."""
    from izero.config import SweepConfig
    from izero.config import sweep as sweep_config
    from izero.errors import ConfigError

    try:
        from izero.methods import METHOD_NAMES
    except ImportError:  # an izero from before the method package
        METHOD_NAMES = ()
    names = dict.fromkeys([*METHOD_NAMES, *getattr(sweep_config, "METHODS", ())])
    out = []
    for name in names:
        try:
            SweepConfig(methods=(name,))
        except ConfigError:
            continue
        out.append(name)
    return out


def _config(method: str, args: argparse.Namespace, out: Path):
    from izero.config import config_from_dict

    return config_from_dict(
        {
            "name": f"method-quality-{method}",
            "tasks": list(args.tasks),
            "seeds": list(range(args.seeds)),
            "methods": [method],
            "method_options": {method: METHOD_OPTIONS[method]} if method in METHOD_OPTIONS else {},
            "budget": {"preset": args.preset},
            "generator": {"model": "tiny:llama", "device": "cpu", "batch_size": 32},
            "blackbox": {
                "backend": "simulated",
                "rpm": RPM,
                "concurrency": CONCURRENCY,
                "price_per_1k_prompt": args.price_prompt,
                "price_per_1k_completion": args.price_completion,
                "simulated": {"latency_s": SIM_LATENCY_S, "seed": 0},
            },
            "output": {"path": str(out / method), "overwrite": True},
        }
    )


def run_method(method: str, args: argparse.Namespace, out: Path) -> tuple[str, float]:
    """Run one method's sweep; returns its results URI and wall seconds."""
    from izero.driver import run_sweep

    cfg = _config(method, args, out)
    t0 = time.perf_counter()
    outcome = run_sweep(
        cfg, on_progress=lambda p: print(f"  {method}: {p.line()}", file=sys.stderr)
    )
    wall = time.perf_counter() - t0
    print(f"  {method}: done in {wall:.0f} s", file=sys.stderr)
    return outcome.uri, wall


def _totals(summaries, method: str) -> tuple[int, float]:
    """Paid black-box calls and cost in USD of ``method``'s runs (test scoring included)."""
    import pyarrow.compute as pc

    mine = summaries.filter(pc.equal(summaries.column("method"), method))
    calls = int(pc.sum(mine.column("total_calls")).as_py() or 0)
    cost = float(pc.sum(mine.column("total_cost_usd")).as_py() or 0.0)
    return calls, cost


def on_task_share(evaluations, tasks: tuple[str, ...]) -> dict[str, float]:
    """Method -> share of its evaluated instructions that mention any of the task's keywords,
    i.e. that the simulated black box answers better than its floor (relevance > 0)."""
    from izero.blackbox.simulated import SimulatedModel
    from izero.tasks import load_task
    from izero.tasks.builtin import BUILTIN_TASKS

    model = SimulatedModel(  # the keywords the sweep's simulated server was given
        [load_task(t) for t in tasks],
        keywords={t: BUILTIN_TASKS[t].keywords for t in tasks if t in BUILTIN_TASKS},
    )
    hits: dict[str, list[bool]] = {}
    for row in evaluations.select(["task", "method", "instruction"]).to_pylist():
        on_task = model.relevance(row["instruction"], row["task"]) > 0
        hits.setdefault(row["method"], []).append(on_task)
    return {m: sum(h) / len(h) for m, h in hits.items()}


def _fmt(iv) -> str:
    if iv.mean is None:
        return "n/a"
    if not iv.defined:
        return f"{iv.mean:.3f} [n/a]"
    return f"{iv.mean:.3f} [{iv.lo:.3f}, {iv.hi:.3f}]"


def _fmt_diff(iv) -> str:
    if iv.mean is None:
        return "n/a"
    if not iv.defined:
        return f"{iv.mean:+.3f} [n/a]"
    return f"{iv.mean:+.3f} [{iv.lo:+.3f}, {iv.hi:+.3f}]"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _combined_store(uris: dict[str, str], root: Path, seeds: int):
    """One results store holding every method's rows, for ``izero report``."""
    from izero.results import ResultsStore, collect_provenance

    store = ResultsStore(root / "combined")
    store.ensure_new_sweep(overwrite=True)
    for uri in uris.values():
        src = ResultsStore(uri)
        store.append_evaluations(src.read_evaluations())
        store.append_summaries(src.read_summaries())
        calls = src.read_calls()
        if calls.num_rows:
            store.append_calls(calls)
    store.write_provenance(
        collect_provenance(
            config={"methods": list(uris), "sweeps": list(uris.values())},
            seeds=tuple(range(seeds)),
            sweep="method-quality",
        )
    )
    store.mark_finished()
    return store


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--methods",
        default=None,
        help="comma-separated methods (default: every method izero registers)",
    )
    parser.add_argument(
        "--tasks",
        default=",".join(DEFAULT_TASKS),
        help="comma-separated built-in tasks (default: the offline demo's six)",
    )
    parser.add_argument("--seeds", type=int, default=DEFAULT_SEEDS, help="seeds 0..N-1")
    parser.add_argument("--preset", choices=["demo", "smoke", "paper"], default=DEFAULT_PRESET)
    parser.add_argument("--reference", default=None, help="default: instructzero if run")
    parser.add_argument("--price-prompt", type=float, default=PRICE_PROMPT_PER_1K)
    parser.add_argument("--price-completion", type=float, default=PRICE_COMPLETION_PER_1K)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="keep every sweep and a combined izero report here (default: a temp dir, removed)",
    )
    args = parser.parse_args(argv)
    args.tasks = tuple(t for t in args.tasks.split(",") if t)
    known = known_methods()
    methods = known if args.methods is None else [m for m in args.methods.split(",") if m]
    unknown = [m for m in methods if m not in known]
    if unknown:
        parser.error(f"unknown method(s) {', '.join(unknown)}; known: {', '.join(known)}")
    if args.seeds < 1:
        parser.error("--seeds: expected at least 1")
    if args.reference is not None and args.reference not in methods:
        parser.error(f"--reference {args.reference}: expected one of {', '.join(methods)}")
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)

    import pyarrow as pa

    from izero.results import ResultsStore
    from izero.results.comparison import compare_methods, noise_sentences

    root = args.out or Path(tempfile.mkdtemp(prefix="izero-method-quality-"))
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    try:
        uris: dict[str, str] = {}
        walls: dict[str, float] = {}
        for method in methods:
            uris[method], walls[method] = run_method(method, args, root)
        summaries = pa.concat_tables([ResultsStore(u).read_summaries() for u in uris.values()])
        evaluations = pa.concat_tables([ResultsStore(u).read_evaluations() for u in uris.values()])
        on_task = on_task_share(evaluations, args.tasks)
        comparison = compare_methods(summaries, reference=args.reference)
        totals = {m: _totals(summaries, m) for m in methods}
        report_path = None
        if args.out is not None:
            from izero.results.report import build_report

            store = _combined_store(uris, root, args.seeds)
            report_path = build_report(store, reference=comparison.reference).path
    finally:
        if args.out is None:
            shutil.rmtree(root, ignore_errors=True)
    total_wall = time.perf_counter() - t_start

    versus = {v.method: v for v in comparison.versus}
    ref = comparison.reference
    header = [
        "method",
        "mean test [95%]",
        f"vs {ref} [95%]",
        "W/T/L/U",
        "on-task",
        "calls",
        "cost $",
        "wall",
    ]
    rows = []
    for m in methods:
        iv = comparison.per_method.get(m)
        v = versus.get(m)
        rows.append(
            [
                m,
                "n/a" if iv is None else _fmt(iv),
                "reference" if m == ref else ("n/a" if v is None else _fmt_diff(v.interval)),
                "" if v is None else "/".join(str(v.counts[k]) for k in v.counts),
                f"{100 * on_task.get(m, 0.0):.1f}%",
                str(totals[m][0]),
                f"{totals[m][1]:.4f}",
                f"{walls[m]:.0f} s",
            ]
        )
    print(
        f"Method quality: {len(args.tasks)} built-in tasks x {args.seeds} seeds, budget preset "
        f"{args.preset!r}, tiny random generator, simulated black box "
        f"(${args.price_prompt:g}/${args.price_completion:g} per 1k prompt/completion tokens)"
    )
    print(_table(header, rows))
    print()
    task_header = ["task", *methods]
    task_rows = [
        [t, *(_fmt(comparison.per_task[(t, m)].interval) if (t, m) in comparison.per_task
              else "n/a" for m in methods)]
        for t in comparison.tasks
    ]  # fmt: skip
    print(
        "W/T/L/U: tasks won/tied/lost/undecided against the reference (paired over seeds); "
        "on-task: share of evaluated instructions that mention a keyword of their task (the "
        "only thing the simulated black box rewards); calls and cost: paid black-box calls."
    )
    print()
    print("Test score per task, mean over seeds [95% interval]:")
    print(_table(task_header, task_rows))
    print()
    for sentence in noise_sentences(comparison):
        print(f"- {sentence}")
    if report_path is not None:
        print(f"report: {report_path}")
    print(f"total wall time: {total_wall:.0f} s")

    def bounds(iv):
        return [iv.lo, iv.hi] if iv is not None and iv.defined else None

    summary = {
        "methods": methods,
        "mean_test": {
            m: comparison.per_method[m].mean for m in methods if m in comparison.per_method
        },
        "ci95": {m: bounds(comparison.per_method.get(m)) for m in methods},
        "calls": {m: totals[m][0] for m in methods},
        "cost_usd": {m: round(totals[m][1], 6) for m in methods},
        "on_task_share": {m: round(on_task.get(m, 0.0), 4) for m in methods},
        "reference": ref,
        "versus": {
            m: {
                "mean_diff": v.interval.mean,
                "ci95": bounds(v.interval),
                "verdict": v.verdict,
                **dict(v.counts),
            }
            for m, v in versus.items()
        },
        "tasks": list(args.tasks),
        "seeds": args.seeds,
        "preset": args.preset,
        "wall_s": {m: round(w, 1) for m, w in walls.items()},
        "total_wall_s": round(total_wall, 1),
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
