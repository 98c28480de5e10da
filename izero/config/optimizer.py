"""The ``optimizer`` section: the GP kernel, acquisition and its optimiser."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from izero.config._checks import check, int_at_least

# Optimizer.
DEFAULT_KERNEL = "instruction_coupled"
DEFAULT_ACQUISITION = "qlogei"
# izero's batched acquisition optimiser starts from its best raw batches (izero.bo.ProposerOptions)
DEFAULT_NUM_RESTARTS = 1
DEFAULT_RAW_SAMPLES = 32


@dataclass(frozen=True)
class OptimizerConfig:
    """Bayesian optimisation: GP kernel, acquisition function and its optimiser.

    ``kernel``: ``instruction_coupled`` (InstructZero) or plain ``matern`` (Matern-5/2 on z);
    ``acquisition``: ``qlogei`` or ``qlognei``; ``num_restarts``/``raw_samples``: candidate
    batches refined / scored per task by izero's batched acquisition optimiser;
    ``seed_offset`` is added to the sweep seed for BO's own draws.
    """

    _SECTION: ClassVar[str] = "optimizer."

    kernel: Literal["instruction_coupled", "matern"] = DEFAULT_KERNEL
    acquisition: Literal["qlogei", "qlognei"] = DEFAULT_ACQUISITION
    num_restarts: int = DEFAULT_NUM_RESTARTS
    raw_samples: int = DEFAULT_RAW_SAMPLES
    seed_offset: int = 0

    def __post_init__(self) -> None:
        s = self._SECTION
        int_at_least(s, "num_restarts", self.num_restarts, 1)
        int_at_least(s, "raw_samples", self.raw_samples, 1)
        check(
            self.raw_samples >= self.num_restarts,
            f"{s}raw_samples",
            self.raw_samples,
            f"at least num_restarts ({self.num_restarts})",
        )
        int_at_least(s, "seed_offset", self.seed_offset, 0)
