"""``random``: quasi-random search, the run's Sobol sequence continued round after round.

The baseline every soft-prompt optimiser must beat under the same budget: it shares
``instructzero``'s initial design and then keeps drawing Sobol points instead of asking a model.
"""

from __future__ import annotations

from izero.methods.base import Candidate, History, Method
from izero.methods.sobol import sobol_round


class RandomSearch(Method):
    """Sobol points in ``[-1, 1]^d``: ``n_init``, then ``n_rounds`` rounds of ``q``."""

    name = "random"
    soft_prompt = True

    async def propose(self, history: History, round: int) -> list[Candidate] | None:
        if round > self.run.budget.n_rounds:
            return None
        return sobol_round(self.run, self.services, round)
