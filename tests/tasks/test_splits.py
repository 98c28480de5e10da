"""Seeded, disjoint demos/dev/test splits."""

from __future__ import annotations

import logging
import random
from pathlib import Path

import pytest

from izero.errors import TaskDataError
from izero.tasks import Example, Task, load_task, make_splits


def _task(n_induce: int, n_execute: int) -> Task:
    return Task(
        name="toy",
        metric="exact_match",
        induce=tuple(Example(f"i{k}", (f"o{k}",)) for k in range(n_induce)),
        execute=tuple(Example(f"e{k}", (f"o{k}",)) for k in range(n_execute)),
    )


def test_disjoint_sizes_and_reproducible() -> None:
    task = _task(200, 300)
    state = random.getstate()
    a = make_splits(task, seed=3)
    assert random.getstate() == state  # global random state untouched
    assert (len(a.demos), len(a.dev), len(a.test)) == (5, 20, 100)
    assert not {e.input for e in a.demos} & {e.input for e in a.dev}
    assert all(e.input.startswith("e") for e in a.test)
    assert len({e.input for e in a.test}) == 100
    assert make_splits(task, seed=3) == a
    b = make_splits(task, seed=4)
    assert b.demos != a.demos and b.test != a.test
    assert (a.task, a.metric, a.seed) == ("toy", "exact_match", 3)


def test_small_execute_is_used_whole_in_file_order() -> None:
    task = _task(50, 30)
    s = make_splits(task, seed=0)
    assert s.test == task.execute


def test_without_execute_test_comes_from_unused_induce() -> None:
    task = _task(200, 0)
    s = make_splits(task, seed=1, n_demos=5, n_dev=20, n_test=100)
    used = [e.input for e in s.demos + s.dev + s.test]
    assert len(used) == len(set(used)) == 125
    small = make_splits(_task(25, 0), seed=1)
    assert len(small.demos) == 5 and len(small.dev) == 10 and len(small.test) == 10


def test_small_task_shrinks_dev_with_warning_or_refuses(caplog) -> None:
    task = _task(10, 8)
    with caplog.at_level(logging.WARNING, logger="izero.tasks.splits"):
        s = make_splits(task, seed=0)
    assert len(s.dev) == 5 and "only 5 dev examples" in caplog.text
    with pytest.raises(TaskDataError, match=r"too small.*dev 5 < 20.*test 8 < 100"):
        make_splits(task, seed=0, strict=True)
    with pytest.raises(TaskDataError, match=r"has 5 induce examples; 6 are needed"):
        make_splits(_task(5, 3), seed=0)
    with pytest.raises(TaskDataError, match=r"n_dev must be an integer >= 1"):
        make_splits(task, seed=0, n_dev=0)


@pytest.mark.parametrize("name", ["auto_debugging", "cs_algorithms", "translation_en-fr"])
def test_real_tasks(name: str, data_dir: Path) -> None:
    task = load_task(name, data_dir=data_dir)
    s = make_splits(task, seed=0)
    assert len(s.demos) == 5 and 1 <= len(s.dev) <= 20 and 1 <= len(s.test) <= 100
    assert not {e.input for e in s.demos} & {e.input for e in s.dev}
    if not task.execute:
        assert not {e.input for e in s.test} & {e.input for e in s.demos + s.dev}


@pytest.mark.parametrize("n_execute", [300, 0])
def test_train_pool_holds_the_induce_examples_not_scored(n_execute) -> None:
    task = _task(200, n_execute)
    s = make_splits(task, seed=5)
    train = [e.input for e in s.train]
    assert s.train[: len(s.demos)] == s.demos
    assert len(train) == len(set(train))
    assert not set(train) & {e.input for e in s.dev + s.test}
    # every induce example is in exactly one of train, dev, test
    assert set(train) | {e.input for e in s.dev + s.test if e.input.startswith("i")} == {
        e.input for e in task.induce
    }
    assert make_splits(task, seed=5).train == s.train
