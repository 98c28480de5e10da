"""The ``data`` section: how task examples are read and which dev examples an instruction meets.

- ``word_in_context_answers``: ``all`` accepts ``output`` and ``possible_outputs`` (``same`` /
  ``yes`` / ``true``), as Honovich et al.'s benchmark does; ``output`` accepts ``output`` only,
  as InstructZero's loader does (``load_data.py:42``).
- ``dev_sampling``: ``fixed`` scores every instruction of a run on the same ``budget.n_dev``
  dev examples (as the paper describes); ``per_evaluation`` draws a fresh random
  ``budget.n_dev`` examples for every evaluated instruction from the induce examples not used
  as demonstrations, as the original code does (``exec_accuracy.py:29-30``). The draw is seeded
  by the task, the run's seed and the evaluation's index, so a resumed run draws the same
  examples, and runs of different methods meet the same examples at the same index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, get_args, get_type_hints

from izero.config._checks import check

DEFAULT_WORD_IN_CONTEXT_ANSWERS = "all"
DEFAULT_DEV_SAMPLING = "fixed"


@dataclass(frozen=True)
class DataConfig:
    """Task-data options (see the module docstring)."""

    _SECTION: ClassVar[str] = "data."

    word_in_context_answers: Literal["all", "output"] = DEFAULT_WORD_IN_CONTEXT_ANSWERS
    dev_sampling: Literal["fixed", "per_evaluation"] = DEFAULT_DEV_SAMPLING

    def __post_init__(self) -> None:
        hints = get_type_hints(type(self))
        for name in ("word_in_context_answers", "dev_sampling"):
            choices = get_args(hints[name])
            check(
                getattr(self, name) in choices,
                f"{self._SECTION}{name}",
                getattr(self, name),
                f"one of {', '.join(choices)}",
            )
