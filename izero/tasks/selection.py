"""The tasks of a sweep, loaded and checked together before any work starts.

A sweep names its tasks as strings (built-in tasks, or tasks of the instruction-induction data
folder) or as task-file entries (objects with the fields of
:class:`izero.config.tasks.TaskFileConfig`: ``name``, ``path``, ``input``, ``output``,
``metric``, ``extract``, ``split``, ``separator``, ``annotations``, ``format``, ``sha256``).
:func:`load_tasks` loads them all and refuses the first problem with one line: duplicate
names, unreadable or malformed files, a file whose content is not the pinned ``sha256``, or a
table task too small for the budget's demos, dev and test examples.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from izero.errors import TaskDataError
from izero.tasks.files import read_task_file
from izero.tasks.loader import load_task
from izero.tasks.splits import TABLE_SOURCE, check_table_sizes
from izero.tasks.types import Task

#: Fields of a task-file entry passed to :func:`~izero.tasks.files.read_task_file`.
FILE_FIELDS = (
    "name",
    "path",
    "input",
    "output",
    "metric",
    "extract",
    "split",
    "separator",
    "annotations",
    "format",
)


def entry_name(entry: Any) -> str:
    """The task name of a sweep's task entry (a name, or a task-file entry)."""
    return entry if isinstance(entry, str) else entry.name


def load_tasks(
    entries: Iterable[Any],
    *,
    data_dir: str | Path | None = None,
    n_demos: int,
    n_dev: int,
    n_test: int,
    word_in_context_answers: str = "all",
) -> dict[str, Task]:
    """Load every task of a sweep, by name, in the order given.

    Args:
        entries: task names and task-file entries.
        data_dir: the instruction-induction data folder for named tasks (None = built-in only).
        n_demos, n_dev, n_test: the budget's split sizes (table tasks must hold them).
        word_in_context_answers: see :func:`izero.tasks.load_task`.

    Raises:
        TaskDataError: duplicate names, an unknown task, a bad file, a changed pinned file, or
            too few rows.
    """
    tasks: dict[str, Task] = {}
    for entry in entries:
        name = entry_name(entry)
        if name in tasks:
            raise TaskDataError(
                f"task name {name!r} appears twice in the sweep. Fix: give each task its own "
                "name (a task file's name: field)"
            )
        if isinstance(entry, str):
            tasks[name] = load_task(
                entry, data_dir=data_dir, word_in_context_answers=word_in_context_answers
            )
            continue
        task = read_task_file(**{f: getattr(entry, f) for f in FILE_FIELDS})
        pinned = getattr(entry, "sha256", None)
        if pinned is not None and pinned != task.digest:
            raise TaskDataError(
                f"task file {entry.path!r} of task {name!r} has sha256 {task.digest[:12]}..., "
                f"not the {pinned[:12]}... its config pins (the file changed). Fix: restore the "
                "file, or start a new sweep under another output.path"
            )
        check_table_sizes(task, n_demos=n_demos, n_dev=n_dev, n_test=n_test)
        tasks[name] = task
    return tasks


def file_digests(tasks: Mapping[str, Task]) -> dict[str, str]:
    """Task name -> SHA-256 of its file, for the table tasks among ``tasks``."""
    return {
        name: task.digest
        for name, task in tasks.items()
        if task.source == TABLE_SOURCE and task.digest is not None
    }
