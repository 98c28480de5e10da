"""The random projection A: shapes, ranges, seeds, scales and input validation."""

from __future__ import annotations

import math

import pytest
import torch

from izero.errors import ConfigError, GeneratorError
from izero.generator import ProjectionConfig, RandomProjection, make_projection_matrix


def test_shapes_and_uniform_range() -> None:
    cfg = ProjectionConfig(seed=0, intrinsic_dim=10, n_prompt_tokens=5, hidden_size=16, scale=0.5)
    proj = RandomProjection(cfg)
    assert proj.matrix.shape == (5 * 16, 10)
    assert proj.matrix.dtype == torch.float32
    assert proj.matrix.abs().max() <= 0.5
    assert proj.matrix.min() < -0.4 and proj.matrix.max() > 0.4  # fills the range
    z = torch.rand(7, 10) * 2 - 1
    out = proj.project(z)
    assert out.shape == (7, 5, 16)
    # Row i of the output is A z_i reshaped, token-major.
    torch.testing.assert_close(out[3].reshape(-1), proj.matrix @ z[3], rtol=1e-5, atol=1e-6)
    assert proj.project(z[0]).shape == (1, 5, 16)
    half = proj.project(z, dtype=torch.bfloat16)
    assert half.dtype == torch.bfloat16


def test_same_seed_same_matrix_other_seed_differs() -> None:
    a = make_projection_matrix(ProjectionConfig(seed=3, hidden_size=8))
    b = make_projection_matrix(ProjectionConfig(seed=3, hidden_size=8))
    c = make_projection_matrix(ProjectionConfig(seed=4, hidden_size=8))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_normal_init_uses_the_original_codes_scale() -> None:
    std_hat, d = 0.02, 10
    cfg = ProjectionConfig(hidden_size=400, init="normal", scale=2.0, embedding_std=std_hat)
    matrix = make_projection_matrix(cfg)
    expected = 2.0 * std_hat / math.sqrt(d)
    assert abs(float(matrix.std()) - expected) / expected < 0.05
    assert abs(float(matrix.mean())) < 0.1 * expected


@pytest.mark.parametrize("init", ["uniform", "normal"])
def test_match_embedding_std_gives_embedding_scale_for_uniform_z(init: str) -> None:
    std_hat = 0.03
    cfg = ProjectionConfig(
        hidden_size=64, init=init, embedding_std=std_hat, match_embedding_std=True, seed=1
    )
    proj = RandomProjection(cfg)
    z = torch.rand(4096, 10, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = proj.project(z)
    # Averaged over the 320 output coordinates (finite-A error is ~1/sqrt(320) per coord).
    assert abs(float(out.std()) - std_hat) / std_hat < 0.1


def test_projection_rejects_bad_soft_prompts() -> None:
    proj = RandomProjection(ProjectionConfig(hidden_size=8))
    with pytest.raises(GeneratorError, match="n x 10"):
        proj.project(torch.zeros(2, 9))
    with pytest.raises(GeneratorError, match="outside"):
        proj.project(torch.full((1, 10), 1.5))
    with pytest.raises(GeneratorError, match="NaN"):
        proj.project(torch.tensor([[math.nan] * 10]))
    with pytest.raises(GeneratorError, match="NaN"):
        proj.project(torch.tensor([[math.inf] * 10]))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"intrinsic_dim": 0},
        {"n_prompt_tokens": -1},
        {"init": "xavier"},
        {"scale": 0.0},
        {"scale": math.nan},
        {"init": "normal"},  # needs embedding_std
        {"match_embedding_std": True, "embedding_std": -1.0},
    ],
)
def test_projection_config_validation(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        ProjectionConfig(**kwargs)
