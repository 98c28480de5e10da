"""Load tasks in the instruction-induction JSON format, or izero's built-in tasks.

A data directory holds ``induce/<task>.json`` (demonstrations and dev examples),
``execute/<task>.json`` (held-out test examples; optional) and ``annotations/<task>.json``
(human reference instructions; optional). Each example file reads
``{"metadata": {"num_examples": N}, "examples": {"1": {...}, "2": {...}}}``.

Special formats, read as the upstream (APE / InstructZero) loaders read them:

- ``cause_and_effect``: ``cause`` and ``effect`` become ``"Sentence 1: .. Sentence 2: .."`` in
  an order drawn from a fixed seed (:data:`CAUSE_AND_EFFECT_SEED`, one draw per example in file
  order), so a task loads the same every time; the answer is the cause.
- ``common_concept``: input is the ``items`` joined by ``", "`` *without the last item* (as
  upstream does); answers are ``all_common_concepts`` (``concept`` first).
- ``rhymes``: answers are ``other_rhymes``; ``translation_*``: ``possible_translations``;
  ``word_in_context``: ``possible_outputs``. In each case the ``output`` field, when present,
  is put first so that it is the canonical answer shown in demonstrations.
  ``word_in_context_answers="output"`` keeps ``output`` alone, as InstructZero's loader does
  (``"all"``, the default, accepts ``same``/``yes``/``true`` too, as Honovich et al. do).

Name resolution: without ``data_dir`` only the built-in tasks exist. With ``data_dir`` a task
file there wins over a built-in task of the same name (so ``sum`` loads the upstream data when
a data directory is given and izero's generated ``sum`` otherwise).
"""

from __future__ import annotations

import difflib
import json
import logging
import random
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from izero.errors import TaskDataError
from izero.tasks.builtin import BUILTIN_TASKS
from izero.tasks.metrics import metric_for_task
from izero.tasks.types import Example, Task

logger = logging.getLogger(__name__)

INDUCE_DIR = "induce"
EXECUTE_DIR = "execute"
ANNOTATIONS_DIR = "annotations"

#: ``load_task(word_in_context_answers=...)`` choices; the first is the default.
WORD_IN_CONTEXT_ANSWERS = ("all", "output")

#: Seed of the sentence order of ``cause_and_effect`` inputs (fixed: a task loads identically).
CAUSE_AND_EFFECT_SEED = 0

_DATA_DIR_FIX = (
    "pass the instruction_induction folder that holds induce/<task>.json "
    "(e.g. ../shared/data/instruction_induction), or no data dir for the built-in tasks only"
)


def _data_root(data_dir: str | Path) -> Path:
    """Check that ``data_dir`` is a readable task data directory and return it."""
    root = Path(data_dir).expanduser()
    induce = root / INDUCE_DIR
    if not root.is_dir():
        raise TaskDataError(f"task data dir {str(root)!r} does not exist. Fix: {_DATA_DIR_FIX}")
    if not induce.is_dir():
        raise TaskDataError(
            f"task data dir {str(root)!r} has no {INDUCE_DIR}/ folder. Fix: {_DATA_DIR_FIX}"
        )
    try:
        next(iter(induce.iterdir()), None)
    except OSError as exc:
        raise TaskDataError(
            f"task data dir {str(induce)!r} is not readable ({exc.strerror}). "
            "Fix: check its permissions"
        ) from exc
    return root


def file_tasks(data_dir: str | Path) -> list[str]:
    """Names of the tasks in ``data_dir`` (one per ``induce/<task>.json``), sorted."""
    root = _data_root(data_dir)
    return sorted(p.stem for p in (root / INDUCE_DIR).glob("*.json") if p.is_file())


def list_tasks(data_dir: str | Path | None = None) -> list[str]:
    """All loadable task names: the built-in tasks plus, given ``data_dir``, its tasks; sorted."""
    names = set(BUILTIN_TASKS)
    if data_dir is not None:
        names.update(file_tasks(data_dir))
    return sorted(names)


def close_matches(name: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to ``n`` names of ``candidates`` close to ``name`` (for "did you mean" hints)."""
    return difflib.get_close_matches(name, list(candidates), n=n, cutoff=0.6)


def unknown_task_message(name: str, data_dir: str | Path | None) -> str:
    """A one-line explanation of why ``name`` is not a task, with close matches."""
    known = list_tasks(data_dir)
    hint = close_matches(name, known)
    where = (
        f"built-in tasks and the tasks in {str(data_dir)!r}"
        if data_dir is not None
        else "built-in tasks only (no data dir given; file tasks need --data-dir)"
    )
    msg = f"unknown task {name!r}; tasks come from {where}"
    if hint:
        msg += f"; did you mean {', '.join(repr(h) for h in hint)}?"
    else:
        msg += f"; known: {', '.join(known)}"
    return msg


def load_task(
    name: str,
    *,
    data_dir: str | Path | None = None,
    word_in_context_answers: str = WORD_IN_CONTEXT_ANSWERS[0],
) -> Task:
    """Load task ``name``: from ``data_dir`` if it has the task, else a built-in task.

    ``word_in_context_answers``: ``"all"`` (``output`` and ``possible_outputs``) or ``"output"``
    (the canonical answer alone, as the original InstructZero loader).

    Raises:
        TaskDataError: unknown task, unreadable data dir, or malformed file (the message names
            the path and the fix).
    """
    if word_in_context_answers not in WORD_IN_CONTEXT_ANSWERS:
        raise TaskDataError(
            f"word_in_context_answers must be one of {WORD_IN_CONTEXT_ANSWERS}, got "
            f"{word_in_context_answers!r}. Fix: use 'all' or 'output'"
        )
    if data_dir is not None:
        root = _data_root(data_dir)
        if (root / INDUCE_DIR / f"{name}.json").is_file():
            task = _load_file_task(name, root)
            if name == "word_in_context" and word_in_context_answers == "output":
                task = _canonical_answers_only(task)
            return task
    if name in BUILTIN_TASKS:
        return BUILTIN_TASKS[name].make_task()
    raise TaskDataError(unknown_task_message(name, data_dir) + ". Fix: use one of the known names")


def _canonical_answers_only(task: Task) -> Task:
    """``task`` with each example accepting its canonical answer (``output``) alone."""

    def only(examples: tuple[Example, ...]) -> tuple[Example, ...]:
        return tuple(replace(ex, answers=ex.answers[:1]) for ex in examples)

    return replace(task, induce=only(task.induce), execute=only(task.execute))


def _read_json(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as f:
            return json.load(f)
    except OSError as exc:
        raise TaskDataError(
            f"cannot read task file {str(path)!r} ({exc.strerror}). Fix: check the file exists "
            "and is readable"
        ) from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TaskDataError(
            f"task file {str(path)!r} is not valid UTF-8 JSON ({exc}). Fix: restore the file "
            "from the upstream instruction-induction data"
        ) from exc


def _malformed(path: Path, what: str) -> TaskDataError:
    return TaskDataError(
        f"task file {str(path)!r} is malformed: {what}. Fix: the format is "
        '{"metadata": {"num_examples": N}, "examples": {"1": {"input": .., "output": ..}, ..}}'
    )


def _field(path: Path, key: str, raw: dict[str, Any], field: str, kind: type) -> Any:
    if field not in raw:
        raise _malformed(path, f"example {key!r} has no field {field!r} (has {sorted(raw)})")
    value = raw[field]
    if kind is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or not value:
            raise _malformed(
                path, f"example {key!r} field {field!r} is not a non-empty string list"
            )
    elif not isinstance(value, kind):
        raise _malformed(path, f"example {key!r} field {field!r} is not a {kind.__name__}")
    return value


def _answers(path: Path, key: str, first: str | None, others: list[str]) -> tuple[str, ...]:
    """Accepted answers, canonical first, without duplicates or blanks (upstream translation
    lists hold a few empty strings)."""
    ordered = ([first] if first is not None else []) + others
    answers = tuple(a for a in dict.fromkeys(ordered) if a.strip())
    if not answers:
        raise _malformed(path, f"example {key!r} has no non-empty answer")
    return answers


def _parse_example(task: str, path: Path, key: str, raw: Any, rng: random.Random) -> Example:
    if not isinstance(raw, dict):
        raise _malformed(path, f"example {key!r} is a {type(raw).__name__}, not an object")
    if task == "cause_and_effect":
        cause = _field(path, key, raw, "cause", str)
        effect = _field(path, key, raw, "effect", str)
        first, second = (cause, effect) if rng.random() < 0.5 else (effect, cause)
        return Example(input=f"Sentence 1: {first} Sentence 2: {second}", answers=(cause,))
    if task == "common_concept":
        items = _field(path, key, raw, "items", list)
        concepts = _field(path, key, raw, "all_common_concepts", list)
        concept = raw.get("concept") if isinstance(raw.get("concept"), str) else None
        return Example(input=", ".join(items[:-1]), answers=_answers(path, key, concept, concepts))
    text = _field(path, key, raw, "input", str)
    output = raw.get("output") if isinstance(raw.get("output"), str) else None
    list_field = None
    if task == "rhymes":
        list_field = "other_rhymes"
    elif task.startswith("translation"):
        list_field = "possible_translations"
    elif task == "word_in_context":
        list_field = "possible_outputs"
    if list_field is not None:
        others = _field(path, key, raw, list_field, list)
        return Example(input=text, answers=_answers(path, key, output, others))
    canonical = _field(path, key, raw, "output", str)
    return Example(input=text, answers=_answers(path, key, canonical, []))


def _load_examples(task: str, path: Path) -> tuple[Example, ...]:
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("examples"), dict):
        raise _malformed(path, "no 'examples' object at the top level")
    raw_examples: dict[str, Any] = data["examples"]
    try:
        keys = sorted(raw_examples, key=int)
    except ValueError as exc:
        raise _malformed(path, "example keys are not integers") from exc
    if not keys:
        raise _malformed(path, "'examples' is empty")
    rng = random.Random(CAUSE_AND_EFFECT_SEED)
    examples = tuple(_parse_example(task, path, k, raw_examples[k], rng) for k in keys)
    meta = data.get("metadata")
    declared = meta.get("num_examples") if isinstance(meta, dict) else None
    if declared != len(examples):
        logger.warning(
            "%s: metadata.num_examples is %r but the file holds %d examples; using %d",
            path,
            declared,
            len(examples),
            len(examples),
        )
    return examples


def _load_annotations(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ()
    data = _read_json(path)
    notes = data.get("annotations") if isinstance(data, dict) else None
    if not isinstance(notes, list) or not all(isinstance(a, str) for a in notes):
        raise _malformed(path, "'annotations' is not a list of strings")
    return tuple(notes)


def _load_file_task(name: str, root: Path) -> Task:
    induce = _load_examples(name, root / INDUCE_DIR / f"{name}.json")
    execute_path = root / EXECUTE_DIR / f"{name}.json"
    execute = _load_examples(name, execute_path) if execute_path.is_file() else ()
    annotations = _load_annotations(root / ANNOTATIONS_DIR / f"{name}.json")
    return Task(
        name=name,
        metric=metric_for_task(name),
        induce=induce,
        execute=execute,
        annotations=annotations,
        source="file",
    )
