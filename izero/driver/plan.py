"""What a sweep runs: one optimisation per (task, method, seed)."""

from __future__ import annotations

from dataclasses import dataclass


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
