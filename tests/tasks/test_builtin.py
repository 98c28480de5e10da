"""Built-in tasks: deterministic generation, correct answers, upstream formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from izero.errors import TaskDataError
from izero.tasks import BUILTIN_TASKS, load_task, score_answer
from izero.tasks.builtin import number_to_words, pluralize

REQUIRED = {
    "sum",
    "diff",
    "first_word_letter",
    "second_word_letter",
    "letters_list",
    "word_sorting",
    "num_to_verbal",
    "singular_to_plural",
}


def test_registry_has_the_required_tasks() -> None:
    assert len(BUILTIN_TASKS) >= 8 and set(BUILTIN_TASKS) >= REQUIRED
    for name, spec in BUILTIN_TASKS.items():
        assert spec.name == name and spec.keywords and len(spec.annotations) >= 3


@pytest.mark.parametrize("name", sorted(BUILTIN_TASKS))
def test_generation_is_deterministic_and_answers_are_right(name: str) -> None:
    spec = BUILTIN_TASKS[name]
    task = load_task(name)
    assert task.source == "builtin" and task.annotations == spec.annotations
    assert len(task.induce) == 100 and len(task.execute) == 100
    inputs = [ex.input for ex in task.induce + task.execute]
    assert len(set(inputs)) == len(inputs)  # induce and execute are disjoint
    assert load_task(name) == task
    other = spec.make_task(seed=1)
    assert [e.input for e in other.induce] != [e.input for e in task.induce]
    for ex in task.induce + task.execute:
        assert ex.answers == spec.solve(ex.input)
        assert score_answer(ex.output, ex.answers, task.metric) == 1.0


def test_hand_worked_answers() -> None:
    solve = {n: t.solve for n, t in BUILTIN_TASKS.items()}
    assert solve["sum"]("23 41") == ("64",)
    assert solve["diff"]("64 23") == ("41",)
    assert solve["first_word_letter"]("time") == ("t",)
    assert solve["second_word_letter"]("time") == ("i",)
    assert solve["letters_list"]("time") == ("t i m e",)
    assert solve["word_sorting"]("\nList: pear apple fig\n") == ("apple fig pear",)
    assert solve["num_to_verbal"]("1049") == ("one thousand and forty-nine",)
    assert solve["singular_to_plural"]("city") == ("cities",)
    assert solve["larger_animal"]("spider, elephant") == ("elephant",)
    assert solve["word_unscrambling"]("nolem") == ("lemon", "melon")
    assert number_to_words(0) == "zero" and number_to_words(9000) == "nine thousand"
    assert number_to_words(1960) == "one thousand, nine hundred and sixty"
    assert pluralize("box") == "boxes" and pluralize("day") == "days"
    assert pluralize("child") == "children"
    with pytest.raises(ValueError, match=r"0\.\.9999"):
        number_to_words(10000)


@pytest.mark.parametrize(
    "name",
    [
        "sum",
        "diff",
        "first_word_letter",
        "second_word_letter",
        "letters_list",
        "word_sorting",
        "num_to_verbal",
    ],
)
def test_solvers_agree_with_upstream_data(name: str, data_dir: Path) -> None:
    upstream = load_task(name, data_dir=data_dir)
    solve = BUILTIN_TASKS[name].solve
    for ex in upstream.induce + upstream.execute:
        assert solve(ex.input)[0] == ex.output, ex


def test_upstream_format_shapes() -> None:
    assert load_task("word_sorting").induce[0].input.startswith("\nList: ")
    sum_input = load_task("sum").induce[0].input
    assert len(sum_input.split()) == 2 and all(p.isdigit() for p in sum_input.split())
    assert ", " in load_task("larger_animal").induce[0].input


def test_too_many_examples_is_refused() -> None:
    with pytest.raises(TaskDataError, match="distinct inputs"):
        BUILTIN_TASKS["first_word_letter"].make_task(n_induce=5000)
    with pytest.raises(TaskDataError, match="n_induce"):
        BUILTIN_TASKS["sum"].make_task(n_induce=0)
