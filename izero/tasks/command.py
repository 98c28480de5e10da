"""``izero tasks``: list the tasks, their source, metric and example counts.

Without ``--config`` it lists every built-in task (and those of ``--data-dir``); with a sweep
config it lists that sweep's tasks, task files included (read and checked as a sweep would).
"""

from __future__ import annotations

import argparse

from izero.tasks.loader import list_tasks, load_task
from izero.tasks.types import Task


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``izero tasks``."""
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="instruction-induction data folder (induce/, execute/, annotations/); "
        "without it only the built-in tasks are listed",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="list the tasks of this sweep config instead (task files included)",
    )


def _loaded(args: argparse.Namespace) -> list[Task]:
    if args.config is None:
        return [load_task(name, data_dir=args.data_dir) for name in list_tasks(args.data_dir)]
    from izero.config import load_config
    from izero.tasks.selection import load_tasks

    overrides = [f"data_dir={args.data_dir}"] if args.data_dir is not None else []
    cfg = load_config(args.config, overrides=overrides)
    b = cfg.budget
    tasks = load_tasks(
        cfg.tasks, data_dir=cfg.data_dir, n_demos=b.n_demos, n_dev=b.n_dev, n_test=b.n_test
    )
    return list(tasks.values())


def run(args: argparse.Namespace) -> int:
    """Print one row per task; return 0."""
    rows = [("task", "source", "metric", "induce", "execute", "annotations")]
    for task in _loaded(args):
        induce = len(task.induce) + len(task.demo_pool or ())
        rows.append(
            (
                task.name,
                task.source,
                str(task.metric),
                str(induce),
                str(len(task.execute)),
                str(len(task.annotations)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print(f"{len(rows) - 1} tasks")
    return 0
