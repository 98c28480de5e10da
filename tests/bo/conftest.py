"""Fixtures for the BO tests: small synthetic observations."""

from __future__ import annotations

import pytest
import torch

from izero.bo import TaskObservations, initial_design


def make_observations(n: int, d: int, m: int, *, seed: int) -> TaskObservations:
    """``n`` Sobol soft prompts with Bernoulli per-example scores from a smooth function of z."""
    gen = torch.Generator().manual_seed(seed)
    z = initial_design(n, d, seed=seed)
    w = torch.randn(d, m, generator=gen, dtype=torch.float64)
    p = torch.sigmoid(torch.sin(2.0 * z) @ w)
    s = (torch.rand(n, m, generator=gen, dtype=torch.float64) < p).double()
    return TaskObservations(z=z, y=s.mean(-1), s=s)


@pytest.fixture
def small_tasks() -> list[TaskObservations]:
    """Three tasks: two with n=12 and one with n=9 (two shape groups), d=4, m=6."""
    return [
        make_observations(12, 4, 6, seed=1),
        make_observations(12, 4, 6, seed=2),
        make_observations(9, 4, 6, seed=3),
    ]
