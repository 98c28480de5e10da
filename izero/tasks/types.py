"""Plain data types shared by every stage: examples, tasks and their splits."""

from __future__ import annotations

from dataclasses import dataclass

from izero.tasks.metrics import Metric


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

    ``source`` is ``"file"`` for the instruction-induction JSON data, ``"builtin"`` for the
    tasks izero generates itself, or ``"table"`` for a user's CSV/JSONL/Parquet file
    (:mod:`izero.tasks.files`). ``execute`` may be empty (two upstream tasks have no
    execute file); the test split is then drawn from the induce examples not used elsewhere.

    ``metric``: a metric name or a :class:`~izero.tasks.metrics.MetricSpec`. A table task
    with a split column keeps its ``demo`` rows in ``demo_pool``, its ``dev`` rows in
    ``induce`` and its ``test`` rows in ``execute``; without one, every row is in ``induce``
    and :func:`~izero.tasks.splits.make_splits` splits them by seed. ``uri`` and ``digest``
    (SHA-256 of the file's bytes) say where a table task came from.
    """

    name: str
    metric: Metric
    induce: tuple[Example, ...]
    execute: tuple[Example, ...]
    annotations: tuple[str, ...] = ()
    source: str = "file"
    demo_pool: tuple[Example, ...] | None = None
    uri: str | None = None
    digest: str | None = None


@dataclass(frozen=True)
class TaskSplits:
    """The three disjoint splits InstructZero uses for one (task, seed).

    ``demos``: demonstrations shown to the generator; ``dev``: examples scored during
    optimisation; ``test``: held-out examples for the final score. ``dev_sampling``:
    ``"fixed"`` scores every instruction on ``dev``; ``"per_evaluation"`` on a fresh random
    ``len(dev)`` examples of ``dev_pool`` (every induce example that is neither a demo nor a
    test example) per evaluation, see :func:`izero.tasks.splits.dev_examples`. ``train``: the
    induce examples in neither ``dev`` nor ``test`` (``demos`` first), from which methods that
    pick their own demonstrations draw them (empty for splits built by hand).
    """

    task: str
    metric: Metric
    seed: int
    demos: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    dev_pool: tuple[Example, ...] = ()
    dev_sampling: str = "fixed"
    train: tuple[Example, ...] = ()
