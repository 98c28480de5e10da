"""``instructzero``: InstructZero with batch q-EI (izero's batched version of the paper).

Round 0 evaluates the run's Sobol initial design; every later round fits the GP with the
instruction-coupled kernel on the answered evaluations (soft prompts ``z``, mean dev scores
``y`` and per-example score vectors ``s``) and takes ``q`` soft prompts from one joint q-LogEI
(or q-LogNEI) optimisation (:mod:`izero.bo`), computed in a Ray task batched with other runs'.
The paper's own procedure (analytic EI maximised by CMA-ES restarts) is
``instructzero_paper``.

State: the GP's fitted hyper-parameters, which warm-start the next round's fit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from izero.errors import OptimizerError
from izero.methods.base import Candidate, History, Method
from izero.methods.sobol import sobol_round

logger = logging.getLogger(__name__)

#: Seeds of a run's rounds: ``seed * ROUND_SEED_STRIDE + round``.
ROUND_SEED_STRIDE = 1000
#: Fewest answered soft-prompt evaluations a GP is fitted on.
MIN_GP_OBSERVATIONS = 2


class InstructZero(Method):
    """Batch q-EI on the instruction-coupled GP; Sobol points when it cannot fit."""

    name = "instructzero"
    soft_prompt = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._warm_start: dict[str, Any] | None = None

    async def propose(self, history: History, round: int) -> list[Candidate] | None:
        budget = self.run.budget
        if round > budget.n_rounds:
            return None
        if round == 0:
            return sobol_round(self.run, self.services, 0)
        obs = history.observations()
        if obs is None or obs[0].shape[0] < MIN_GP_OBSERVATIONS:
            # Nothing (or one point) answered: the GP has nothing to learn from; keep exploring.
            logger.warning(
                "%s round %d: too few answered evaluations for a GP; proposing Sobol points",
                self.run.id,
                round,
            )
            return sobol_round(self.run, self.services, round)
        z, y, s = obs
        try:
            points, self._warm_start = await self.services.bo_propose(
                z=z,
                y=y,
                s=s,
                q=budget.q,
                seed=self.run.seed * ROUND_SEED_STRIDE + round,
                warm_start=self._warm_start,
            )
        except OptimizerError as err:  # a failed fit must not stop the run
            logger.warning("%s round %d: %s; proposing Sobol points", self.run.id, round, err)
            return sobol_round(self.run, self.services, round)
        return [Candidate.soft_prompt(p) for p in points.tolist()]

    def state_dict(self) -> dict[str, Any]:
        return {"warm_start": self._warm_start}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self._warm_start = state.get("warm_start")
