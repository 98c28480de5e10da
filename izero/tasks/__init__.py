"""Task data: examples, splits, metrics and the built-in tasks.

Public API::

    load_task(name, *, data_dir=None, word_in_context_answers="all") -> Task
    list_tasks(data_dir=None) -> list[str]
    read_task_file(name=, path=, input=, output=, metric=, extract=, split=, ...) -> Task
    load_tasks(entries, *, data_dir=None, n_demos, n_dev, n_test) -> dict[str, Task]
    make_splits(task, *, seed, n_demos=5, n_dev=20, n_test=100, dev_sampling="fixed")
        -> TaskSplits
    dev_examples(splits, eval_index) -> tuple[Example, ...]
    score_answer(prediction, answers, metric) -> float   # metric: name, plug-in or MetricSpec
    extract_answer(text, rule) -> str
    metric_for_task(name) -> str
    METRICS, BUILTIN_TASKS, MetricSpec
"""

from izero.tasks.builtin import BUILTIN_TASKS, BuiltinTask
from izero.tasks.extract import extract_answer
from izero.tasks.files import read_task_file
from izero.tasks.loader import list_tasks, load_task
from izero.tasks.metrics import (
    METRICS,
    TASK_TO_METRIC,
    MetricError,
    MetricSpec,
    metric_for_task,
    normalize_prediction,
    score_answer,
)
from izero.tasks.selection import load_tasks
from izero.tasks.splits import dev_examples, make_splits
from izero.tasks.types import Example, Task, TaskSplits

__all__ = [
    "BUILTIN_TASKS",
    "METRICS",
    "TASK_TO_METRIC",
    "BuiltinTask",
    "Example",
    "MetricError",
    "MetricSpec",
    "Task",
    "TaskSplits",
    "dev_examples",
    "extract_answer",
    "list_tasks",
    "load_task",
    "load_tasks",
    "make_splits",
    "metric_for_task",
    "normalize_prediction",
    "read_task_file",
    "score_answer",
]
