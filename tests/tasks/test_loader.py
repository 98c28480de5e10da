"""Loading the instruction-induction data and the built-in tasks."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from izero.errors import TaskDataError
from izero.tasks import BUILTIN_TASKS, list_tasks, load_task, metric_for_task

UPSTREAM_TASKS = 33
NO_EXECUTE = {"ascii_word_recognition", "cs_algorithms"}


def _count(path: Path) -> int:
    return len(json.loads(path.read_text(encoding="utf-8"))["examples"])


def test_every_task_loads_with_the_file_counts(data_dir: Path, caplog) -> None:
    names = sorted(p.stem for p in (data_dir / "induce").glob("*.json"))
    assert len(names) == UPSTREAM_TASKS
    with caplog.at_level(logging.WARNING, logger="izero.tasks.loader"):
        for name in names:
            task = load_task(name, data_dir=data_dir)
            assert task.name == name and task.source == "file"
            assert task.metric == metric_for_task(name)
            assert len(task.induce) == _count(data_dir / "induce" / f"{name}.json")
            execute = data_dir / "execute" / f"{name}.json"
            if name in NO_EXECUTE:
                assert not execute.exists() and task.execute == ()
            else:
                assert len(task.execute) == _count(execute)
            for ex in task.induce + task.execute:
                assert isinstance(ex.input, str) and ex.answers
                assert all(isinstance(a, str) and a for a in ex.answers)
            has_notes = (data_dir / "annotations" / f"{name}.json").exists()
            assert bool(task.annotations) == has_notes
    # cs_algorithms declares 156 examples but holds 157: the file wins, with a warning.
    assert len(load_task("cs_algorithms", data_dir=data_dir).induce) == 157
    assert any(
        "cs_algorithms" in r.getMessage() and "156" in r.getMessage() for r in caplog.records
    )


def test_cause_and_effect_inputs_hold_both_sentences_answer_is_cause(data_dir: Path) -> None:
    raw = json.loads((data_dir / "induce" / "cause_and_effect.json").read_text())["examples"]
    task = load_task("cause_and_effect", data_dir=data_dir)
    orders = set()
    for key, ex in zip(sorted(raw, key=int), task.induce, strict=True):
        cause, effect = raw[key]["cause"], raw[key]["effect"]
        assert ex.answers == (cause,)
        assert ex.input in (
            f"Sentence 1: {cause} Sentence 2: {effect}",
            f"Sentence 1: {effect} Sentence 2: {cause}",
        )
        orders.add(ex.input.startswith(f"Sentence 1: {cause}"))
    assert orders == {True, False}  # both orders occur
    assert load_task("cause_and_effect", data_dir=data_dir) == task  # seeded: same every load


def test_common_concept_drops_last_item_and_keeps_all_concepts(data_dir: Path) -> None:
    raw = json.loads((data_dir / "execute" / "common_concept.json").read_text())["examples"]["1"]
    ex = load_task("common_concept", data_dir=data_dir).execute[0]
    assert ex.input == ", ".join(raw["items"][:-1]) == "rock climbing, elevators"
    assert ex.answers == ("involve vertical movement.", "involve going up.")


def test_list_answer_tasks(data_dir: Path) -> None:
    de = load_task("translation_en-de", data_dir=data_dir).induce[0]
    assert de.input == "time" and de.output == "Zeit"
    assert "Zeitpunkt wählen" in de.answers and len(de.answers) == len(set(de.answers))
    rhyme = load_task("rhymes", data_dir=data_dir).induce[0]
    assert (
        rhyme.input == "pig"
        and rhyme.output == "big"
        and set(rhyme.answers)
        == {
            "big",
            "pig",
            "dig",
        }
    )
    # upstream translation lists hold a few empty strings: they are dropped
    train = next(
        e for e in load_task("translation_en-de", data_dir=data_dir).induce if e.input == "train"
    )
    assert "" not in train.answers and "Eisenbahn" in train.answers
    wic = load_task("word_in_context", data_dir=data_dir).induce[0]
    assert wic.answers == ("not the same", "no", "false")


def test_list_tasks_builtin_and_file(data_dir: Path) -> None:
    assert list_tasks() == sorted(BUILTIN_TASKS)
    both = list_tasks(data_dir)
    assert set(BUILTIN_TASKS) <= set(both) and "cs_algorithms" in both
    assert len(both) == len(set(both)) == UPSTREAM_TASKS  # built-in names are upstream names


def test_data_dir_shadows_builtin_of_same_name(data_dir: Path) -> None:
    assert load_task("sum").source == "builtin"
    from_file = load_task("sum", data_dir=data_dir)
    assert from_file.source == "file" and len(from_file.induce) == 4950
    # a built-in task the data dir lacks still loads when a data dir is given
    assert "larger_animal" in BUILTIN_TASKS


def test_unknown_task_names_close_matches(data_dir: Path) -> None:
    with pytest.raises(TaskDataError, match=r"unknown task 'summ'.*did you mean 'sum'"):
        load_task("summ")
    with pytest.raises(TaskDataError, match=r"file tasks need --data-dir"):
        load_task("cs_algorithms")
    with pytest.raises(TaskDataError, match=r"did you mean 'cs_algorithms'"):
        load_task("cs_algorithm", data_dir=data_dir)


def test_missing_data_dir(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(TaskDataError, match=rf"'{missing}' does not exist. Fix: pass"):
        load_task("sum", data_dir=missing)
    with pytest.raises(TaskDataError, match=r"has no induce/ folder"):
        list_tasks(tmp_path)


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "induce").write_text("not a folder")
    with pytest.raises(TaskDataError, match=r"has no induce/ folder"):
        load_task("sum", data_dir=tmp_path)
    with pytest.raises(TaskDataError, match=r"does not exist"):
        list_tasks(tmp_path / "induce")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid UTF-8 JSON"),
        ('{"metadata": {}}', "no 'examples' object"),
        ('{"examples": {}}', "'examples' is empty"),
        ('{"examples": {"a": {"input": "x", "output": "y"}}}', "keys are not integers"),
        ('{"examples": {"1": {"input": "x"}}}', "has no field 'output'"),
        ('{"examples": {"1": {"input": 3, "output": "y"}}}', "field 'input' is not a str"),
        ('{"examples": {"1": ["x", "y"]}}', "is a list, not an object"),
        ('{"examples": {"1": {"input": "x", "output": " "}}}', "has no non-empty answer"),
    ],
)
def test_malformed_files_name_path_and_fix(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "induce").mkdir()
    path = tmp_path / "induce" / "mytask.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TaskDataError, match=message) as info:
        load_task("mytask", data_dir=tmp_path)
    assert str(path) in str(info.value) and "Fix:" in str(info.value)


def test_copied_data_dir_with_extra_task(data_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "induce").mkdir(parents=True)
    shutil.copy(data_dir / "induce" / "informal_to_formal.json", root / "induce" / "mine.json")
    task = load_task("mine", data_dir=root)
    assert task.execute == () and task.annotations == () and len(task.induce) == 15
    assert "mine" in list_tasks(root)
