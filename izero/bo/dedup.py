"""Keep proposals distinct from each other and from already evaluated soft prompts."""

from __future__ import annotations

import logging

import torch
from torch import Tensor
from torch.quasirandom import SobolEngine

logger = logging.getLogger(__name__)

FALLBACK_SEED_OFFSET = 7919
"""Offset of the Sobol seed used for replacement points (so they differ from the init design)."""


def _far(point: Tensor, others: Tensor, tol: float) -> bool:
    if others.numel() == 0:
        return True
    return bool(((others - point).abs().amax(dim=-1) > tol).all())


def deduplicate(
    proposals: Tensor,
    *,
    evaluated: Tensor,
    tol: float,
    lower: float,
    upper: float,
    seed: int,
) -> Tensor:
    """Replace proposals within ``tol`` (max-norm) of an evaluated or earlier proposal.

    Args:
        proposals: ``q x d`` candidate soft prompts.
        evaluated: ``n x d`` soft prompts already evaluated.
    Returns:
        ``q x d`` proposals, pairwise more than ``tol`` apart and from ``evaluated``;
        replacements are scrambled Sobol points in ``[lower, upper]^d`` (seeded by ``seed``).
    """
    d = proposals.shape[-1]
    kept: list[Tensor] = []
    fallback = SobolEngine(d, scramble=True, seed=int(seed) + FALLBACK_SEED_OFFSET)
    replaced = 0
    for point in proposals:
        taken = torch.cat([evaluated.to(proposals), *[k.unsqueeze(0) for k in kept]])
        candidate = point
        while not _far(candidate, taken, tol):
            candidate = lower + (upper - lower) * fallback.draw(1, dtype=proposals.dtype)[0]
            candidate = candidate.to(proposals)
            replaced += 1
        kept.append(candidate)
    if replaced:
        logger.debug("replaced %d duplicate proposals with Sobol points", replaced)
    return torch.stack(kept) if kept else proposals.new_zeros(0, d)
