"""Plain data types shared by every stage: examples, tasks and their splits."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    """One task example.

    ``input`` is the text the black box sees after the instruction; ``answers`` are all the
    accepted answers (``answers[0]`` is the canonical one, used in demonstrations).
    """

    input: str
    answers: tuple[str, ...]

    @property
    def output(self) -> str:
        """The canonical answer, as shown in demonstrations."""
        return self.answers[0]


@dataclass(frozen=True)
class Task:
    """A task as loaded: every induce and execute example, its metric and annotations.

    ``source`` is ``"file"`` for the instruction-induction JSON data or ``"builtin"`` for the
    tasks izero generates itself. ``execute`` may be empty (two upstream tasks have no
    execute file); the test split is then drawn from the induce examples not used elsewhere.
    """

    name: str
    metric: str
    induce: tuple[Example, ...]
    execute: tuple[Example, ...]
    annotations: tuple[str, ...] = ()
    source: str = "file"


@dataclass(frozen=True)
class TaskSplits:
    """The three disjoint splits InstructZero uses for one (task, seed).

    ``demos``: demonstrations shown to the generator; ``dev``: examples scored during
    optimisation; ``test``: held-out examples for the final score; ``train``: the induce
    examples in neither ``dev`` nor ``test`` (``demos`` first), from which methods that pick
    their own demonstrations draw them (empty for splits built by hand).
    """

    task: str
    metric: str
    seed: int
    demos: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    train: tuple[Example, ...] = ()
