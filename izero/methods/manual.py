"""``manual``: the task's human-written instructions (the "manual instruction" baseline).

Honovich et al. (2022) wrote reference instructions for the 24 instruction-induction tasks
(``annotations/<task>.json``); each distinct one is scored once, so the baseline's best dev
instruction is chosen and tested exactly like an optimiser's.
"""

from __future__ import annotations

import logging

from izero.methods.base import Candidate, History, Method

logger = logging.getLogger(__name__)


class Manual(Method):
    """One round: every distinct human annotation of the task, as it is."""

    name = "manual"
    uses_generator = False

    def _texts(self) -> list[str]:
        return list(dict.fromkeys(a for a in self.run.annotations if a.strip()))

    async def propose(self, history: History, round: int) -> list[Candidate] | None:
        if round > 0:
            return None
        texts = self._texts()
        if not texts:
            logger.warning("%s: the task has no human annotations; nothing to score", self.run.id)
            return None
        return [Candidate.instruction(t) for t in texts]

    def expected_evaluations(self) -> int:
        return len(self._texts())
