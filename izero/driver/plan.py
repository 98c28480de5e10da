"""What a sweep runs: one optimisation per (task, method, seed), and its budget."""

from __future__ import annotations

from dataclasses import dataclass

#: Methods that optimise a soft prompt (and so have a ``z`` per evaluation).
SOFT_PROMPT_METHODS = ("instructzero", "random")
#: Every method the driver knows.
METHODS = ("instructzero", "random", "ape", "manual")


@dataclass(frozen=True, order=True)
class RunKey:
    """One optimisation of a sweep: a task, a method and a seed."""

    task: str
    method: str
    seed: int

    @property
    def id(self) -> str:
        """A stable, file-name-safe identifier, e.g. ``sum__instructzero__0``."""
        return f"{self.task}__{self.method}__{self.seed}"


def plan_runs(
    tasks: tuple[str, ...], methods: tuple[str, ...], seeds: tuple[int, ...]
) -> list[RunKey]:
    """All runs of a sweep, ordered so that the tasks of one seed start together."""
    return [RunKey(t, m, s) for s in seeds for t in tasks for m in methods]


def evaluations_per_run(n_init: int, n_rounds: int, q: int) -> int:
    """Instructions each soft-prompt run (and APE) evaluates: the same budget for all."""
    return n_init + n_rounds * q
