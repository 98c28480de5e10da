"""What a sweep runs: one optimisation per (task, method, seed), each with its method object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from izero.config import SweepConfig


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


def plan_method(config: SweepConfig, key: RunKey, splits: Any, tasks: dict[str, Any]) -> Any:
    """The method object of run ``key``, with its options and the services it may borrow
    (bound to the stages, recorder and progress once they start)."""
    from izero.driver.services import RunServices
    from izero.methods import Budget, RunInfo, method_class

    b = config.budget
    run = RunInfo(
        task=key.task,
        method=key.method,
        seed=key.seed,
        splits=splits,
        budget=Budget(n_init=b.n_init, n_rounds=b.n_rounds, q=b.q),
        intrinsic_dim=config.generator.intrinsic_dim,
        annotations=tasks[key.task].annotations,
    )
    demos = tuple((ex.input, ex.output) for ex in splits.demos)
    services = RunServices(key, demos)
    return method_class(key.method)(run, config.method_options_for(key.method), services)
