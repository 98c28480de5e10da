"""Per-run state: the run's evaluations, its rounds' candidates and its method's state.

The checkpoint of a run holds every round's candidates (saved before they are generated) and
the method's state right after its last proposal, so a resumed run replays exactly the same
candidates and its method continues from where it stopped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from izero.methods.base import Candidate, Evaluation, History

__all__ = ["CHECKPOINT_VERSION", "Evaluation", "RunState", "mean_or_none"]

#: Layout of a run's checkpoint (1: izero 0.1, soft prompts and warm start only).
CHECKPOINT_VERSION = 2


@dataclass
class RunState:
    """Observations of one run, in evaluation order, and what resume needs.

    ``rounds[r]``: the candidates of round ``r``; ``method_state``: the method's
    ``state_dict()`` after its latest proposal.
    """

    evaluations: list[Evaluation] = field(default_factory=list)
    rounds: dict[int, list[Candidate]] = field(default_factory=dict)
    method_state: dict[str, Any] = field(default_factory=dict)

    def history(self) -> History:
        return History(self.evaluations)

    def first_with(self, instruction: str) -> Evaluation | None:
        """The first answered evaluation of ``instruction``, if any (identical ones score once)."""
        for ev in self.evaluations:
            if ev.instruction == instruction and ev.duplicate_of is None and ev.answered:
                return ev
        return None

    def best(self) -> Evaluation | None:
        """The evaluation with the highest dev score (first one wins ties)."""
        return self.history().best()

    def observations(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """See :meth:`izero.methods.History.observations`."""
        return self.history().observations()

    def checkpoint(self, *, rounds_done: int, finished: bool) -> dict[str, Any]:
        """The JSON-safe checkpoint of this run (soft prompts as exact float64 reprs)."""
        return {
            "version": CHECKPOINT_VERSION,
            "rounds_done": rounds_done,
            "finished": finished,
            "rounds": {str(r): [c.to_json() for c in cs] for r, cs in sorted(self.rounds.items())},
            "method_state": self.method_state,
        }

    @classmethod
    def from_checkpoint(cls, data: dict[str, Any] | None) -> RunState:
        """The rounds and method state saved in a checkpoint (empty when there is none).

        Reads izero 0.1 checkpoints too (``proposals``: soft prompts per round, ``warm_start``:
        the GP's hyper-parameters, now ``instructzero``'s method state).
        """
        if not data:
            return cls()
        raw = data.get("rounds")
        if raw is None:  # izero 0.1
            raw = data.get("proposals", {})
            method_state = {"warm_start": data.get("warm_start")}
        else:
            method_state = dict(data.get("method_state") or {})
        rounds = {int(r): [Candidate.from_json(c) for c in cs] for r, cs in raw.items()}
        return cls(rounds=rounds, method_state=method_state)


def mean_or_none(scores: tuple[float | None, ...]) -> float | None:
    """Mean over answered examples, ``None`` when no example was answered."""
    vals = [v for v in scores if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None
