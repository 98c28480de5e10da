"""Seeded, reproducible splits of a task as InstructZero uses them.

- ``demos``: ``n_demos`` induce examples shown to the generator in its prompt.
- ``dev``: ``n_dev`` further induce examples (disjoint from the demos) scored during
  optimisation. Small tasks (e.g. ``auto_debugging`` with 10 induce examples) get fewer, as
  upstream does (``min(20, len(eval_data))``); a warning is logged, or ``strict=True`` refuses.
- ``test``: the execute examples, or a seeded subsample of ``n_test`` of them when there are
  more. Tasks without execute examples take their test set from the induce examples used
  neither as demos nor as dev (the dev set is then capped at half of what remains).
- ``train``: every induce example used neither as dev nor as test, the demos first. Methods
  that draw their own demonstrations (APE's demo subsets) sample them from here, so they never
  see the examples they are scored on. Drawing it takes no random numbers: the other splits are
  the same with or without it.

Every draw comes from ``random.Random(seed)``; global random state is never touched.
"""

from __future__ import annotations

import logging
import random

from izero.errors import TaskDataError
from izero.tasks.types import Task, TaskSplits

logger = logging.getLogger(__name__)

DEFAULT_N_DEMOS = 5
DEFAULT_N_DEV = 20
DEFAULT_N_TEST = 100


def make_splits(
    task: Task,
    *,
    seed: int,
    n_demos: int = DEFAULT_N_DEMOS,
    n_dev: int = DEFAULT_N_DEV,
    n_test: int = DEFAULT_N_TEST,
    strict: bool = False,
) -> TaskSplits:
    """Draw demos, dev and test examples of ``task`` from ``seed``.

    Args:
        task: the loaded task.
        seed: split seed; the same seed always gives the same splits.
        n_demos: demonstrations for the generator prompt (all of them are required).
        n_dev: dev examples scored during optimisation (fewer if the task is small).
        n_test: at most this many test examples.
        strict: refuse (instead of shrinking dev/test with a warning) when the task is small.

    Raises:
        TaskDataError: bad sizes, or too few examples for the demos plus one dev (and, without
            execute examples, one test) example.
    """
    for label, value, low in (("n_demos", n_demos, 1), ("n_dev", n_dev, 1), ("n_test", n_test, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TaskDataError(
                f"make_splits({task.name!r}): {label} must be an integer >= {low}, got {value!r}"
            )
    rng = random.Random(seed)
    order = list(range(len(task.induce)))
    rng.shuffle(order)
    needed = n_demos + 1 + (0 if task.execute else 1)
    if len(order) < needed:
        raise TaskDataError(
            f"task {task.name!r} has {len(order)} induce examples; {needed} are needed for "
            f"{n_demos} demos, 1 dev" + ("" if task.execute else " and 1 test") + " example. "
            "Fix: lower budget.n_demos or choose a larger task"
        )
    demos = [task.induce[i] for i in order[:n_demos]]
    rest = order[n_demos:]
    dev_cap = len(rest) if task.execute else len(rest) // 2
    dev_size = min(n_dev, dev_cap)
    dev = [task.induce[i] for i in rest[:dev_size]]
    if task.execute:
        if len(task.execute) > n_test:
            picked = sorted(rng.sample(range(len(task.execute)), n_test))
            test = [task.execute[i] for i in picked]
        else:
            test = list(task.execute)
        train_rest = rest[dev_size:]
    else:
        test = [task.induce[i] for i in rest[dev_size : dev_size + n_test]]
        train_rest = rest[dev_size + n_test :]
    short = [
        f"{label} {got} < {want}"
        for label, got, want in (("dev", len(dev), n_dev), ("test", len(test), n_test))
        if got < want
    ]
    if short and strict:
        raise TaskDataError(
            f"task {task.name!r} is too small for the requested splits ({'; '.join(short)}). "
            "Fix: lower budget.n_dev/budget.n_test or pass strict=False"
        )
    if len(dev) < n_dev:
        logger.warning("task %r: only %d dev examples (asked for %d)", task.name, len(dev), n_dev)
    return TaskSplits(
        task=task.name,
        metric=task.metric,
        seed=seed,
        demos=tuple(demos),
        dev=tuple(dev),
        test=tuple(test),
        train=tuple(demos) + tuple(task.induce[i] for i in train_rest),
    )
