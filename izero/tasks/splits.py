"""Seeded, reproducible splits of a task as InstructZero uses them.

- ``demos``: ``n_demos`` induce examples shown to the generator in its prompt.
- ``dev``: ``n_dev`` further induce examples (disjoint from the demos) scored during
  optimisation. Small tasks (e.g. ``auto_debugging`` with 10 induce examples) get fewer, as
  upstream does (``min(20, len(eval_data))``); a warning is logged, or ``strict=True`` refuses.
- ``test``: the execute examples, or a seeded subsample of ``n_test`` of them when there are
  more. Tasks without execute examples take their test set from the induce examples used
  neither as demos nor as dev (the dev set is then capped at half of what remains).
- ``dev_pool``: every induce example that is neither a demo nor a test example. With
  ``dev_sampling="per_evaluation"`` (the original InstructZero code) each evaluated instruction
  is scored on its own random ``len(dev)`` examples of it (:func:`dev_examples`).
- ``train``: every induce example used neither as dev nor as test, the demos first. Methods
  that draw their own demonstrations (APE's demo subsets) sample them from here, so they never
  see the examples they are scored on. Drawing it takes no random numbers: the other splits are
  the same with or without it.

Table tasks (a user's CSV/JSONL/Parquet file, ``source == "table"``) are split strictly:

- without a split column, the rows are shuffled by the seed and cut into ``n_demos`` demos,
  ``n_dev`` dev examples and up to ``n_test`` test examples (at least one);
- with one, demos are a seeded draw of ``n_demos`` of the ``demo`` rows, dev a seeded draw of
  ``n_dev`` of the ``dev`` rows, test a seeded draw of up to ``n_test`` of the ``test`` rows.

Too few rows for that is refused with the counts (:func:`check_table_sizes`), not shrunk.

Every draw comes from ``random.Random(seed)``; global random state is never touched.
"""

from __future__ import annotations

import logging
import random

from izero.errors import TaskDataError
from izero.tasks.types import Example, Task, TaskSplits

logger = logging.getLogger(__name__)

DEFAULT_N_DEMOS = 5
DEFAULT_N_DEV = 20
DEFAULT_N_TEST = 100
#: ``Task.source`` of a user's task file.
TABLE_SOURCE = "table"
#: ``make_splits(dev_sampling=...)`` choices; the first is the default.
DEV_SAMPLING = ("fixed", "per_evaluation")


def make_splits(
    task: Task,
    *,
    seed: int,
    n_demos: int = DEFAULT_N_DEMOS,
    n_dev: int = DEFAULT_N_DEV,
    n_test: int = DEFAULT_N_TEST,
    strict: bool = False,
    dev_sampling: str = DEV_SAMPLING[0],
) -> TaskSplits:
    """Draw demos, dev and test examples of ``task`` from ``seed``.

    Args:
        task: the loaded task.
        seed: split seed; the same seed always gives the same splits.
        n_demos: demonstrations for the generator prompt (all of them are required).
        n_dev: dev examples scored during optimisation (fewer if the task is small).
        n_test: at most this many test examples.
        strict: refuse (instead of shrinking dev/test with a warning) when the task is small.
        dev_sampling: ``"fixed"`` (every instruction meets ``dev``) or ``"per_evaluation"``
            (each evaluation its own draw from ``dev_pool``, see :func:`dev_examples`).

    Raises:
        TaskDataError: bad sizes, or too few examples for the demos plus one dev (and, without
            execute examples, one test) example.
    """
    for label, value, low in (("n_demos", n_demos, 1), ("n_dev", n_dev, 1), ("n_test", n_test, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TaskDataError(
                f"make_splits({task.name!r}): {label} must be an integer >= {low}, got {value!r}"
            )
    if dev_sampling not in DEV_SAMPLING:
        raise TaskDataError(
            f"make_splits({task.name!r}): dev_sampling must be one of {DEV_SAMPLING}, got "
            f"{dev_sampling!r}"
        )
    if task.source == TABLE_SOURCE:
        return _table_splits(
            task, seed=seed, n_demos=n_demos, n_dev=n_dev, n_test=n_test, dev_sampling=dev_sampling
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
        pool = rest
        train_rest = rest[dev_size:]
    else:
        test = [task.induce[i] for i in rest[dev_size : dev_size + n_test]]
        pool = rest[:dev_size] + rest[dev_size + n_test :]
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
        dev_pool=tuple(task.induce[i] for i in pool),
        dev_sampling=dev_sampling,
        train=tuple(demos) + tuple(task.induce[i] for i in train_rest),
    )


def check_table_sizes(task: Task, *, n_demos: int, n_dev: int, n_test: int) -> None:
    """Refuse a table task too small for ``n_demos`` demos, ``n_dev`` dev and one test example.

    Raises:
        TaskDataError: one line with the file, the counts found and needed, and the fix.
    """
    where = f"task {task.name!r} (file {task.uri!r})"
    fix = "Fix: add rows, or lower budget.n_demos / budget.n_dev"
    if task.demo_pool is None:
        need = n_demos + n_dev + 1
        if len(task.induce) < need:
            raise TaskDataError(
                f"{where} has {len(task.induce)} rows; {need} are needed for {n_demos} demos + "
                f"{n_dev} dev + at least 1 test example. {fix}"
            )
        return
    for label, have, need in (
        ("demo", len(task.demo_pool), n_demos),
        ("dev", len(task.induce), n_dev),
        ("test", len(task.execute), 1),
    ):
        if have < need:
            raise TaskDataError(
                f"{where} has {have} rows with split {label!r}; {need} are needed "
                f"({n_demos} demos + {n_dev} dev + at least 1 test example). {fix}, or mark more "
                f"rows {label!r} in the split column"
            )


def _table_splits(
    task: Task, *, seed: int, n_demos: int, n_dev: int, n_test: int, dev_sampling: str
) -> TaskSplits:
    check_table_sizes(task, n_demos=n_demos, n_dev=n_dev, n_test=n_test)
    rng = random.Random(seed)
    if task.demo_pool is None:
        rows = list(task.induce)
        rng.shuffle(rows)
        demos = rows[:n_demos]
        dev = rows[n_demos : n_demos + n_dev]
        test = rows[n_demos + n_dev : n_demos + n_dev + n_test]
        pool = dev + rows[n_demos + n_dev + n_test :]
        train = demos + rows[n_demos + n_dev + n_test :]
    else:
        demos = rng.sample(task.demo_pool, n_demos)
        dev = rng.sample(task.induce, n_dev)
        test = rng.sample(task.execute, min(n_test, len(task.execute)))
        pool = list(task.induce)
        train = list(task.demo_pool)
    if len(test) < n_test:
        logger.info("task %r: %d test examples (budget.n_test is %d)", task.name, len(test), n_test)
    return TaskSplits(
        task=task.name,
        metric=task.metric,
        seed=seed,
        demos=tuple(demos),
        dev=tuple(dev),
        test=tuple(test),
        dev_pool=tuple(pool),
        dev_sampling=dev_sampling,
        train=tuple(train),
    )


def dev_examples(splits: TaskSplits, eval_index: int) -> tuple[Example, ...]:
    """The dev examples evaluation ``eval_index`` of a run on ``splits`` is scored on.

    ``"fixed"`` sampling: ``splits.dev``. ``"per_evaluation"``: ``len(splits.dev)`` examples
    drawn without replacement from ``splits.dev_pool``, seeded by the task, the split seed and
    ``eval_index`` only, so a resumed run draws the same examples and runs of different methods
    meet the same examples at the same index.
    """
    if splits.dev_sampling == "fixed":
        return splits.dev
    if isinstance(eval_index, bool) or not isinstance(eval_index, int) or eval_index < 0:
        raise TaskDataError(f"dev_examples: eval_index must be an integer >= 0, got {eval_index!r}")
    rng = random.Random(f"izero-dev|{splits.task}|{splits.seed}|{eval_index}")
    k = min(len(splits.dev), len(splits.dev_pool))
    return tuple(rng.sample(splits.dev_pool, k))
