"""Task-data options of the original InstructZero code: word_in_context answers and a fresh dev
subset per evaluation."""

from __future__ import annotations

from pathlib import Path

import pytest

from izero.errors import TaskDataError
from izero.tasks import dev_examples, load_task, make_splits, score_answer


def test_word_in_context_answers_output_only(data_dir: Path) -> None:
    every = load_task("word_in_context", data_dir=data_dir)
    only = load_task("word_in_context", data_dir=data_dir, word_in_context_answers="output")
    assert len(every.induce) == len(only.induce) and len(every.execute) == len(only.execute)
    for a, b in zip(every.induce + every.execute, only.induce + only.execute, strict=True):
        assert a.input == b.input and b.answers == (a.answers[0],)
    same = next(ex for ex in every.execute if ex.output == "same")
    other = next(ex for ex in only.execute if ex.input == same.input)
    assert score_answer("yes", same.answers, every.metric) == 1.0
    assert score_answer("yes", other.answers, only.metric) == 0.0
    # other tasks are not touched
    rhymes = load_task("rhymes", data_dir=data_dir, word_in_context_answers="output")
    assert rhymes == load_task("rhymes", data_dir=data_dir)
    with pytest.raises(TaskDataError, match="word_in_context_answers"):
        load_task("sum", word_in_context_answers="first")


@pytest.mark.parametrize("name", ["sum", "auto_categorization", "cs_algorithms"])
def test_dev_pool_is_every_induce_example_but_demos_and_test(name: str, data_dir: Path) -> None:
    task = load_task(name, data_dir=data_dir)
    splits = make_splits(task, seed=3, n_demos=5, n_dev=20, n_test=30)
    pool = set(splits.dev_pool)
    assert not pool & set(splits.demos) and not pool & set(splits.test)
    assert set(splits.dev) <= pool
    assert len(splits.dev_pool) + len(splits.demos) + (
        0 if task.execute else len(splits.test)
    ) == len(task.induce)
    # fixed sampling (the default): every evaluation meets the dev split
    assert all(dev_examples(splits, i) == splits.dev for i in range(5))


def test_per_evaluation_dev_subsets_differ_and_are_reproducible(data_dir: Path) -> None:
    task = load_task("antonyms", data_dir=data_dir)
    kwargs = {"n_demos": 5, "n_dev": 20, "n_test": 50}
    splits = make_splits(task, seed=0, dev_sampling="per_evaluation", **kwargs)
    fixed = make_splits(task, seed=0, **kwargs)
    assert (splits.demos, splits.dev, splits.test) == (fixed.demos, fixed.dev, fixed.test)
    draws = [dev_examples(splits, i) for i in range(30)]
    assert all(len(d) == 20 and len(set(d)) == 20 and set(d) <= set(splits.dev_pool) for d in draws)
    assert len({frozenset(d) for d in draws}) == 30
    # the same index draws the same examples, from a fresh splits object too (a resume)
    again = make_splits(task, seed=0, dev_sampling="per_evaluation", **kwargs)
    assert [dev_examples(again, i) for i in range(30)] == draws
    # another seed of the task draws others
    other = make_splits(task, seed=1, dev_sampling="per_evaluation", **kwargs)
    assert dev_examples(other, 0) != draws[0]
    # the draws spread over the whole pool (2587 examples; about 533 distinct ones expected)
    assert len(splits.dev_pool) == len(task.induce) - 5
    assert len(set().union(*draws)) > 450
    with pytest.raises(TaskDataError, match="dev_sampling"):
        make_splits(task, seed=0, dev_sampling="sometimes")
    with pytest.raises(TaskDataError, match="eval_index"):
        dev_examples(splits, -1)
