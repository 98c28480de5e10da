"""``izero sweep``: run a sweep from a config, with progress, a final table and a report."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

from izero.config import load_config
from izero.config_command import add_arguments as add_config_arguments
from izero.config_command import overrides_from_args
from izero.driver.progress import Progress
from izero.errors import BlackBoxError, GeneratorError, IZeroError, OptimizerError
from izero.results import ResultsStore

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


#: Exit status of a sweep stopped by SIGINT or SIGTERM (as a shell reports Ctrl-C).
EXIT_INTERRUPTED = 130
#: Overrides that a resume command drops (a resume never deletes the sweep it continues).
_NOT_ON_RESUME = ("output.overwrite=",)


def resume_command(args: argparse.Namespace, argv0: str | None = None) -> str:
    """The exact command that resumes this sweep: the same config and overrides, ``--resume``
    instead of ``--overwrite``; ``argv0``: how izero was started (default ``sys.argv[0]``)."""
    argv0 = sys.argv[0] if argv0 is None else argv0
    if argv0.endswith("__main__.py"):
        words = ["python", "-m", "izero", "sweep"]
    elif argv0.endswith(("jobs/sweep.py", "jobs\\sweep.py")):
        words = ["python", "jobs/sweep.py"]  # the `ray job submit` entrypoint
    else:
        words = ["izero", "sweep"]
    if args.config:
        words += ["--config", args.config]
    for override in args.overrides:
        if not override.replace(" ", "").startswith(_NOT_ON_RESUME):
            words += ["--set", override]
    if args.data_dir is not None:
        words += ["--data-dir", args.data_dir]
    if args.no_report:
        words.append("--no-report")
    return shlex.join([*words, "--resume"])


def run(args: argparse.Namespace) -> int:
    from izero.driver.interrupt import SweepInterrupted

    try:
        return _run(args)
    except SweepInterrupted as stopped:
        again = (
            f"resume with: {resume_command(args)}"
            if stopped.recorded
            else "run the same command again"
        )
        print(f"izero: {stopped}. To continue, {again}", file=sys.stderr, flush=True)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
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
    try:
        outcome = run_sweep(config, resume=args.resume, on_progress=_show)
    except (BlackBoxError, GeneratorError, OptimizerError) as err:
        if not ResultsStore(config.output_path).exists():
            raise
        # the sweep stopped after it started: say how to continue it, paying nothing twice
        raise IZeroError(f"{err}. Resume with: {resume_command(args)}") from err
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
