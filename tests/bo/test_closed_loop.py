"""Closed loop on BoTorch's Hartmann6 (negated, maximised): BO clearly beats Sobol search.

Setting (issue 5): 10 initial Sobol points, 20 rounds of q=3 (70 evaluations), several seeds.
Soft prompts z in [-1, 1]^6 map to Hartmann's [0, 1]^6 by x = (z + 1) / 2. The seeds run as
separate tasks of one ``propose`` call per round, as the driver runs many tasks.

Score vectors for the instruction-coupled kernel: InstructZero's S are per-example scores whose
mean is y. Here each "example" is a noisy view of the objective: s_j = f(x) + 0.1 e_j for
j = 1..4 with fixed standard-normal e_j per evaluation (seeded), so the coupled kernel sees
score vectors that correlate with, but are not, the objective; y is f(x) itself.
"""

from __future__ import annotations

import pytest
import torch
from botorch.test_functions import Hartmann

from izero.bo import (
    BatchProposer,
    ProposerOptions,
    SobolProposer,
    TaskObservations,
    initial_design,
)

SEEDS = (0, 1, 2)
N_INIT = 10
ROUNDS = 20
Q = 3
SCORE_LEN = 4
SCORE_NOISE = 0.1


def _evaluate(z: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    f = -Hartmann(dim=6)((z + 1.0) / 2.0)  # maximum 3.32237
    noise = torch.randn(z.shape[0], SCORE_LEN, generator=gen, dtype=z.dtype)
    return f, f.unsqueeze(-1) + SCORE_NOISE * noise


def _run(proposer) -> torch.Tensor:
    """Best f per seed after the loop (``len(SEEDS)``)."""
    gens = [torch.Generator().manual_seed(1000 + s) for s in SEEDS]
    data = []
    for seed, gen in zip(SEEDS, gens, strict=True):
        z = initial_design(N_INIT, 6, seed=seed)
        y, s = _evaluate(z, gen)
        data.append([z, y, s])
    keys = [f"hartmann-{s}" for s in SEEDS]
    for r in range(ROUNDS):
        obs = [TaskObservations(z=z, y=y, s=s) for z, y, s in data]
        seeds = [1000 * r + s for s in SEEDS]
        if isinstance(proposer, SobolProposer):
            seeds = list(SEEDS)  # continue each seed's Sobol sequence
        new = proposer.propose(obs, q=Q, seeds=seeds, keys=keys)
        for entry, points, gen in zip(data, new, gens, strict=True):
            y, s = _evaluate(points, gen)
            entry[0] = torch.cat([entry[0], points])
            entry[1] = torch.cat([entry[1], y])
            entry[2] = torch.cat([entry[2], s])
    return torch.stack([y.max() for _, y, _ in data])


@pytest.fixture(scope="module")
def sobol_best() -> torch.Tensor:
    return _run(SobolProposer())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kernel", "margin", "floor"),
    [
        # BoTorch's tutorial: qLogEI ~2.9-3.1 after this budget, random search ~1.8-2.5.
        ("matern", 0.8, 2.9),
        # The coupled kernel's GP is only informative near evaluated points (z-lengthscale at
        # the prior mode 1/3), so it searches locally around the best points: weaker here.
        ("instruction_coupled", 0.4, 2.3),
    ],
)
def test_bo_beats_sobol_on_hartmann6(kernel, margin, floor, sobol_best):
    best = _run(BatchProposer(ProposerOptions(kernel=kernel)))
    print(f"{kernel}: best {best.tolist()} mean {best.mean():.3f}; sobol {sobol_best.tolist()}")
    assert best.mean() > sobol_best.mean() + margin
    assert best.mean() > floor
