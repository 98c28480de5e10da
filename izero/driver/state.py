"""Per-run state: the observations a run has made, and what resume needs to replay it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Evaluation:
    """One evaluated instruction of a run (a row of the evaluations table)."""

    eval_index: int
    round: int
    instruction: str
    z: tuple[float, ...] | None
    scores: tuple[float | None, ...]
    dev_score: float | None
    duplicate_of: int | None = None

    @property
    def answered(self) -> bool:
        """Whether at least one dev example was answered (failed calls never count as wrong)."""
        return self.dev_score is not None


@dataclass
class RunState:
    """Observations of one run, in evaluation order.

    ``proposals[r]`` are the soft prompts of round ``r`` (``q x d``), saved in the checkpoint
    before they are generated so that a resumed run replays exactly the same points.
    """

    evaluations: list[Evaluation] = field(default_factory=list)
    proposals: dict[int, list[list[float]]] = field(default_factory=dict)

    def first_with(self, instruction: str) -> Evaluation | None:
        """The first answered evaluation of ``instruction``, if any (identical ones score once)."""
        for ev in self.evaluations:
            if ev.instruction == instruction and ev.duplicate_of is None and ev.answered:
                return ev
        return None

    def best(self) -> Evaluation | None:
        """The evaluation with the highest dev score (first one wins ties)."""
        answered = [ev for ev in self.evaluations if ev.answered]
        if not answered:
            return None
        return max(answered, key=lambda ev: (ev.dev_score, -ev.eval_index))

    def observations(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
        """``(z: n x d, y: n, s: n x m)`` of the answered soft-prompt evaluations, float64.

        A failed example in a score vector (``None``) is filled with that instruction's mean
        over its answered examples, so the score kernel sees no holes.
        """
        rows = [ev for ev in self.evaluations if ev.answered and ev.z is not None]
        if not rows:
            return None
        z = torch.tensor([ev.z for ev in rows], dtype=torch.float64)
        y = torch.tensor([ev.dev_score for ev in rows], dtype=torch.float64)
        s = torch.tensor(
            [[ev.dev_score if v is None else v for v in ev.scores] for ev in rows],
            dtype=torch.float64,
        )
        return z, y, s

    def checkpoint(self, *, rounds_done: int, finished: bool) -> dict[str, Any]:
        """The JSON-safe checkpoint of this run (proposals are exact float64 reprs)."""
        return {
            "rounds_done": rounds_done,
            "finished": finished,
            "proposals": {str(r): z for r, z in sorted(self.proposals.items())},
        }

    @staticmethod
    def proposals_from_checkpoint(data: dict[str, Any] | None) -> dict[int, list[list[float]]]:
        """The per-round proposals saved in a checkpoint (empty when there is none)."""
        if not data:
            return {}
        return {int(r): [list(map(float, p)) for p in z] for r, z in data["proposals"].items()}


def mean_or_none(scores: tuple[float | None, ...]) -> float | None:
    """Mean over answered examples, ``None`` when no example was answered."""
    vals = [v for v in scores if v is not None and not math.isnan(v)]
    return sum(vals) / len(vals) if vals else None
