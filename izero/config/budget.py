"""The ``budget`` section: evaluations per run and split sizes, with presets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Literal

from izero.config._checks import int_at_least

# Budget (InstructZero paper: 25 Sobol points, then 5 rounds of 25; 5 demos; 20 dev; 100 test).
DEFAULT_N_INIT = 25
DEFAULT_N_ROUNDS = 5
DEFAULT_Q = 25
DEFAULT_N_DEMOS = 5
DEFAULT_N_DEV = 20
DEFAULT_N_TEST = 100

#: Budget presets, selected with ``budget.preset``; explicit budget fields override them.
BUDGET_PRESETS: Mapping[str, Mapping[str, int]] = {
    # The paper's budget.
    "paper": {"n_init": 25, "n_rounds": 5, "q": 25, "n_demos": 5, "n_dev": 20, "n_test": 100},
    # Tiny: for tests and CI.
    "smoke": {"n_init": 4, "n_rounds": 2, "q": 4, "n_demos": 5, "n_dev": 5, "n_test": 10},
    # A few minutes on 2 CPU cores with the tiny generator and the simulated black box.
    "demo": {"n_init": 8, "n_rounds": 3, "q": 8, "n_demos": 5, "n_dev": 10, "n_test": 20},
}


@dataclass(frozen=True)
class BudgetConfig:
    """How many instructions each (task, method, seed) may evaluate, and split sizes.

    Evaluations per run: ``n_init + n_rounds * q`` instructions, each scored on ``n_dev``
    examples; the best is scored on up to ``n_test`` test examples. ``preset`` records the
    preset the values started from (:data:`BUDGET_PRESETS`), if any.
    """

    _SECTION: ClassVar[str] = "budget."
    _PRESETS: ClassVar[Mapping[str, Mapping[str, int]]] = BUDGET_PRESETS

    preset: Literal["paper", "smoke", "demo"] | None = None
    n_init: int = DEFAULT_N_INIT
    n_rounds: int = DEFAULT_N_ROUNDS
    q: int = DEFAULT_Q
    n_demos: int = DEFAULT_N_DEMOS
    n_dev: int = DEFAULT_N_DEV
    n_test: int = DEFAULT_N_TEST

    def __post_init__(self) -> None:
        s = self._SECTION
        int_at_least(s, "n_init", self.n_init, 1)
        int_at_least(s, "n_rounds", self.n_rounds, 0)
        for name in ("q", "n_demos", "n_dev", "n_test"):
            int_at_least(s, name, getattr(self, name), 1)

    @property
    def n_evaluations(self) -> int:
        """Instructions evaluated per (task, method, seed): ``n_init + n_rounds * q``."""
        return self.n_init + self.n_rounds * self.q
