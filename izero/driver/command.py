"""``izero sweep``: run a sweep from a config, with progress, a final table and a report."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from izero.config import load_config
from izero.config_command import add_arguments as add_config_arguments
from izero.config_command import overrides_from_args
from izero.driver.progress import Progress

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the sweep at output.path: nothing finished is redone, no paid call repeated",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing sweep at output.path (its results are deleted)",
    )
    parser.add_argument(
        "--no-report", action="store_true", help="do not write the report when the sweep ends"
    )


def _show(progress: Progress) -> None:
    print(progress.line(), file=sys.stderr, flush=True)
    if progress.best:
        print("  " + progress.best_line(), file=sys.stderr, flush=True)


def stop_on_sigterm() -> None:
    """Make SIGTERM stop a sweep the way Ctrl-C does.

    ``ray job stop``, Kubernetes and batch schedulers stop a job with SIGTERM (and SIGKILL a
    few seconds later: ``RAY_JOB_STOP_WAIT_TIME_S``, ``terminationGracePeriodSeconds``). By
    default SIGTERM ends Python at once, dropping the answers of requests already sent; as
    Ctrl-C, the sweep stops sending, waits for those answers and caches them (see
    ``ScoringPool.close``), so that ``--resume`` pays for nothing twice.
    """

    def on_sigterm(signum, frame) -> None:
        handler = signal.getsignal(signal.SIGINT)
        if callable(handler):
            handler(signal.SIGINT, frame)  # asyncio's: cancel the sweep's main task
        else:
            raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)


def run(args: argparse.Namespace) -> int:
    from izero.driver.sweep import run_sweep

    overrides = overrides_from_args(args)
    if args.overwrite:
        overrides.append("output.overwrite=true")
    config = load_config(args.config, overrides=overrides)
    print(
        f"izero sweep '{config.name}': {config.n_runs} runs ({len(config.tasks)} tasks x "
        f"{len(config.methods)} methods x {len(config.seeds)} seeds), results -> "
        f"{config.output_path}",
        file=sys.stderr,
        flush=True,
    )
    stop_on_sigterm()
    outcome = run_sweep(config, resume=args.resume, on_progress=_show)
    _show(outcome.progress)
    print(final_table(outcome.outcomes))
    if not args.no_report:
        from izero.results.report import build_report

        report = build_report(outcome.uri)
        print(f"report: {report.path}")
    print(f"results: {outcome.uri}")
    return 0


def final_table(outcomes) -> str:
    """Markdown table: per task and method, mean dev and test score over seeds, best instruction."""
    by: dict[tuple[str, str], list] = {}
    for o in outcomes:
        by.setdefault((o.key.task, o.key.method), []).append(o)
    lines = [
        "| task | method | seeds | dev | test | best instruction |",
        "|---|---|---|---|---|---|",
    ]
    for (task, method), items in sorted(by.items()):
        dev = [o.best_dev_score for o in items if o.best_dev_score is not None]
        test = [o.test_score for o in items if o.test_score is not None]
        best = max(items, key=lambda o: -1.0 if o.best_dev_score is None else o.best_dev_score)
        instr = (best.best_instruction or "").replace("|", "/").replace("\n", " ")
        if len(instr) > 60:
            instr = instr[:57] + "..."
        lines.append(
            f"| {task} | {method} | {len(items)} | {_mean(dev)} | {_mean(test)} | {instr} |"
        )
    return "\n".join(lines)


def _mean(values: list[float]) -> str:
    return f"{sum(values) / len(values):.3f}" if values else "-"
