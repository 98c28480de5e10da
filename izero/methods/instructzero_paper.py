"""``instructzero_paper``: InstructZero's own search procedure, as its original code runs it.

Round 0 evaluates the run's Sobol initial design (the same points as ``instructzero`` and
``random``). Every later round rebuilds the GP with the instruction-coupled kernel on all
answered evaluations, fits it from scratch, and proposes the winners of ``q`` CMA-ES runs on
analytic expected improvement, one started from each of the ``q`` best evaluated soft prompts
(:func:`izero.bo.paper.propose_paper`, in a Ray task through ``services.run_cpu``). Compare
``instructzero``, izero's batch version (one joint q-LogEI per round).

Reference: Chen et al., "InstructZero: Efficient Instruction Optimization for Black-Box Large
Language Models", ICML 2024; code github Lichang-Chen/InstructZero at 911f019
(``run_instructzero.py`` lines 275-330, ``instruction_coupled_kernel.py`` lines 49-66).

State: none (the GP is rebuilt every round, as in the original).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from izero.bo.paper import PaperSearchOptions, propose_paper
from izero.errors import ConfigError, OptimizerError
from izero.methods.base import Candidate, History, Method, MethodServices, RunInfo
from izero.methods.instructzero import MIN_GP_OBSERVATIONS, ROUND_SEED_STRIDE
from izero.methods.sobol import sobol_round

logger = logging.getLogger(__name__)

#: The box of the run's Sobol design (``MethodServices.sobol``).
SOBOL_LOWER, SOBOL_UPPER = -1.0, 1.0


@dataclass(frozen=True)
class InstructZeroPaperOptions(PaperSearchOptions):
    """``method_options.instructzero_paper``: the CMA-ES settings, the paper's by default.

    See :class:`izero.bo.paper.PaperSearchOptions` for each field. The bounds must hold the
    run's Sobol design, ``[-1, 1]^d``.
    """

    _SECTION: ClassVar[str] = "method_options.instructzero_paper."

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, ok, allowed in (
            ("lower", self.lower <= SOBOL_LOWER, f"a number <= {SOBOL_LOWER}"),
            ("upper", self.upper >= SOBOL_UPPER, f"a number >= {SOBOL_UPPER}"),
        ):
            if not ok:
                field = f"{self._SECTION}{name}"
                raise ConfigError(
                    field,
                    getattr(self, name),
                    f"{allowed} (the initial Sobol design fills [-1, 1]^d)",
                    f"set {field} to {allowed}",
                )


class InstructZeroPaper(Method):
    """Analytic EI on the instruction-coupled GP, maximised by CMA-ES from the best points.

    Args:
        run: the run's task, seed and budget.
        options: an :class:`InstructZeroPaperOptions` (None: the paper's settings).
        services: what the driver lends (``sobol`` and ``run_cpu`` are used).

    Raises:
        ConfigError: ``num_starts`` is below the budget's ``q`` (each run gives one point).
    """

    name = "instructzero_paper"
    options_class = InstructZeroPaperOptions
    soft_prompt = True

    def __init__(
        self, run: RunInfo, options: InstructZeroPaperOptions | None, services: MethodServices
    ) -> None:
        opts = options if options is not None else InstructZeroPaperOptions()
        super().__init__(run, opts, services)
        q = run.budget.q
        if opts.num_starts is not None and opts.num_starts < q:
            field = f"{opts._SECTION}num_starts"
            raise ConfigError(
                field,
                opts.num_starts,
                f"null or an integer >= budget q ({q}): each CMA-ES run proposes one point",
                f"set {field} to null",
            )

    async def propose(self, history: History, round: int) -> list[Candidate] | None:
        budget = self.run.budget
        if round > budget.n_rounds:
            return None
        if round == 0:
            return sobol_round(self.run, self.services, 0)
        obs = history.observations()
        if obs is None or obs[0].shape[0] < MIN_GP_OBSERVATIONS:
            logger.warning(
                "%s round %d: too few answered evaluations for a GP; proposing Sobol points",
                self.run.id,
                round,
            )
            return sobol_round(self.run, self.services, round)
        z, y, s = obs
        search = functools.partial(
            propose_paper,
            q=budget.q,
            seed=self.run.seed * ROUND_SEED_STRIDE + round,
            options=self.options,
        )
        try:
            points = await self.services.run_cpu(search, z, y, s)
        except OptimizerError as err:  # a failed search must not stop the run
            logger.warning("%s round %d: %s; proposing Sobol points", self.run.id, round, err)
            return sobol_round(self.run, self.services, round)
        return [Candidate.soft_prompt(p) for p in points.tolist()]

    def state_dict(self) -> dict[str, Any]:
        """Stateless: the GP is rebuilt from the history every round."""
        return {}
