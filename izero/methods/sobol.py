"""The run's scrambled Sobol sequence, sliced into rounds: shared by the soft-prompt methods.

Round 0 is the first ``n_init`` points; round ``r >= 1`` the next ``q``. Methods that start
from the same seed (``instructzero``, ``instructzero_paper``, ``random``) evaluate the same
initial design, so their comparison starts from the same points.
"""

from __future__ import annotations

from izero.methods.base import Candidate, MethodServices, RunInfo


def sobol_round(run: RunInfo, services: MethodServices, round: int) -> list[Candidate]:
    """Round ``round``'s slice of the run's Sobol sequence, as soft-prompt candidates."""
    b = run.budget
    start = 0 if round == 0 else b.n_init + (round - 1) * b.q
    n = b.n_init if round == 0 else b.q
    points = services.sobol(start + n, run.intrinsic_dim, seed=run.seed)[start:]
    return [Candidate.soft_prompt(p) for p in points.tolist()]
