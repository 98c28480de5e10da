"""``izero best RESULTS [--task T] [--method M] [--per-seed] [--format json|yaml|md]``.

Prints the best instruction per task and method of a finished sweep (see
:mod:`izero.results.export`), to paste into an application or load elsewhere.
"""

from __future__ import annotations

import argparse

from izero.results.export import FORMATS, best_instructions, format_best


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``izero best`` arguments to ``parser``."""
    parser.add_argument(
        "results", help="results folder or pyarrow.fs URI of a sweep (file://, s3://, gs://)"
    )
    parser.add_argument("--task", default=None, help="only this task")
    parser.add_argument("--method", default=None, help="only this method")
    parser.add_argument(
        "--per-seed",
        dest="per_seed",
        action="store_true",
        help="one instruction per (task, method, seed) run instead of per (task, method)",
    )
    parser.add_argument(
        "--format",
        dest="format",
        choices=FORMATS,
        default="md",
        help="json (a list of objects), yaml, or a Markdown table (default: md)",
    )


def run(args: argparse.Namespace) -> int:
    """Print the best instructions; return 0 (errors print one line and return 2)."""
    rows = best_instructions(
        args.results, task=args.task, method=args.method, per_seed=args.per_seed
    )
    print(format_best(rows, args.format))
    return 0
