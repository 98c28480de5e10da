"""``izero tasks``: list the tasks, their source, metric and example counts."""

from __future__ import annotations

import argparse

from izero.tasks.loader import list_tasks, load_task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``izero tasks``."""
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="instruction-induction data folder (induce/, execute/, annotations/); "
        "without it only the built-in tasks are listed",
    )


def run(args: argparse.Namespace) -> int:
    """Print one row per task; return 0."""
    rows = [("task", "source", "metric", "induce", "execute", "annotations")]
    for name in list_tasks(args.data_dir):
        task = load_task(name, data_dir=args.data_dir)
        rows.append(
            (
                name,
                task.source,
                task.metric,
                str(len(task.induce)),
                str(len(task.execute)),
                str(len(task.annotations)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(rows) - 1} tasks")
    return 0
