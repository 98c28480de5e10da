"""Baselines under the proposer interface: Sobol search and uniform random search.

``initial_design`` gives the initial points of every method (InstructZero: 25 Sobol points).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.quasirandom import SobolEngine

from izero.bo.dedup import deduplicate
from izero.bo.observations import TaskObservations
from izero.errors import OptimizerError

DEFAULT_LOWER = -1.0
DEFAULT_UPPER = 1.0
"""The soft-prompt box ``[-1, 1]^d`` of InstructZero."""


def _check(observations: Sequence[TaskObservations], q: int, seeds: Sequence[int]) -> None:
    if not isinstance(q, int) or q < 1:
        raise OptimizerError(f"q must be an integer >= 1, got {q!r}")
    if len(seeds) != len(observations):
        raise OptimizerError(
            f"need one seed per task: got {len(seeds)} seeds for {len(observations)} tasks"
        )


def initial_design(
    n: int,
    d: int,
    *,
    seed: int,
    lower: float = DEFAULT_LOWER,
    upper: float = DEFAULT_UPPER,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """``n x d`` scrambled Sobol points in ``[lower, upper]^d``, reproducible for ``seed``."""
    if n < 1 or d < 1:
        raise OptimizerError(f"initial_design needs n >= 1 and d >= 1, got n={n}, d={d}")
    if not lower < upper:
        raise OptimizerError(f"initial_design needs lower < upper, got {lower} and {upper}")
    points = SobolEngine(d, scramble=True, seed=int(seed)).draw(n, dtype=dtype)
    return lower + (upper - lower) * points


class SobolProposer:
    """Sobol search: continues task ``i``'s scrambled Sobol sequence (seed ``seeds[i]``).

    With the seed of :func:`initial_design`, round after round it extends the initial design,
    skipping the ``n`` points already observed.
    """

    def __init__(self, *, lower: float = DEFAULT_LOWER, upper: float = DEFAULT_UPPER) -> None:
        self.lower, self.upper = lower, upper

    def propose(
        self,
        observations: Sequence[TaskObservations],
        *,
        q: int,
        seeds: Sequence[int],
        keys: Sequence[str] | None = None,
    ) -> list[Tensor]:
        """``q x d`` new soft prompts per task (``keys`` is accepted and ignored)."""
        _check(observations, q, seeds)
        out = []
        for obs, seed in zip(observations, seeds, strict=True):
            points = self.lower + (self.upper - self.lower) * self._unit(obs, q, seed)
            out.append(
                deduplicate(
                    points, evaluated=obs.z, tol=1e-9, lower=self.lower, upper=self.upper, seed=seed
                )
            )
        return out

    def _unit(self, obs: TaskObservations, q: int, seed: int) -> Tensor:
        """``q x d`` points in the unit cube for one task."""
        engine = SobolEngine(obs.d, scramble=True, seed=int(seed))
        engine.fast_forward(obs.n)
        return engine.draw(q, dtype=obs.z.dtype)

    def state_dict(self) -> dict:
        """Stateless: an empty dict."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Stateless: accepts the empty dict of :meth:`state_dict`."""


class UniformProposer(SobolProposer):
    """Uniform random search (the paper's "Uniform"): i.i.d. points in the box.

    Task ``i``'s points depend only on ``seeds[i]`` and its number of observations ``n``.
    """

    def _unit(self, obs: TaskObservations, q: int, seed: int) -> Tensor:
        gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + obs.n)
        return torch.rand(q, obs.d, generator=gen, dtype=obs.z.dtype)
