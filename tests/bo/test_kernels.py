"""The instruction-coupled kernel: PSD, matches the dense formula, batch mode, bad inputs."""

from __future__ import annotations

import pytest
import torch
from botorch.models import SingleTaskGP

from izero.bo import InstructionCoupledKernel, make_covar_module
from izero.bo.kernels import DEFAULT_JITTER, LENGTHSCALE_PRIOR_MODE
from izero.bo.posterior import CoupledPosteriorModel
from izero.errors import OptimizerError

PSD_TOL = {torch.float64: 1e-9, torch.float32: 2e-3}
"""Most negative eigenvalue allowed, relative to the largest, per dtype. float32 goes through
``K_Z^-1`` of an ill-conditioned K_Z (lengthscales up to 1.8 on 15 points in 3-d): over 40
random draws its worst ratio was -5e-4. The proposer computes in float64."""


def _data(batch, n, d, m, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    z = (torch.rand(*batch, n, d, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype)
    s = (torch.rand(*batch, n, m, generator=gen, dtype=torch.float64) < 0.5).to(dtype)
    return z, s


def _randomise(kernel: InstructionCoupledKernel, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for sub in (kernel.z_kernel, kernel.s_kernel):
            ls = sub.lengthscale
            sub.lengthscale = 0.3 + 1.5 * torch.rand(ls.shape, generator=gen).to(ls)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_kernel_is_psd_on_random_inputs(dtype, seed):
    z, s = _data((), 15, 3, 5, dtype, seed)
    kernel = InstructionCoupledKernel(z, s, learn_z_lengthscale=True).to(dtype)
    _randomise(kernel, seed)
    gen = torch.Generator().manual_seed(100 + seed)
    x = torch.rand(20, 3, generator=gen, dtype=torch.float64) * 2 - 1
    x = torch.cat([z[:5], x.to(dtype)])
    with torch.no_grad():
        cov = kernel(x, x).to_dense().double()
    assert torch.allclose(cov, cov.mT, atol=1e-12 if dtype == torch.float64 else 1e-5)
    eig = torch.linalg.eigvalsh(cov)
    assert eig.min() >= -PSD_TOL[dtype] * eig.max().abs()


def _dense_formula(kernel: InstructionCoupledKernel, x1, x2):
    """k_Z(x1, Z) (K_Z + jI)^-1 K_S (K_Z + jI)^-1 k_Z(Z, x2) with explicit inverses (float64)."""
    z, s = kernel.train_z, kernel.train_s
    jitter = DEFAULT_JITTER[torch.float64]
    kz_inv = torch.linalg.inv(kernel.z_kernel.forward(z, z) + jitter * torch.eye(z.shape[-2]))
    ks = kernel.s_kernel.forward(s, s)
    return kernel.z_kernel.forward(x1, z) @ kz_inv @ ks @ kz_inv @ kernel.z_kernel.forward(z, x2)


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_kernel_matches_dense_formula(mode):
    z, s = _data((), 12, 3, 4, torch.float64, seed=3)
    kernel = InstructionCoupledKernel(z, s, learn_z_lengthscale=True, identity_tol=0.0)
    _randomise(kernel, 3)
    kernel.train(mode == "train")
    x1 = torch.rand(7, 3, dtype=torch.float64) * 2 - 1
    x2 = torch.cat([z[:4], torch.rand(5, 3, dtype=torch.float64) * 2 - 1])
    with torch.no_grad():
        expected = _dense_formula(kernel, x1, x2)
        got = kernel(x1, x2).to_dense()
        got_train = kernel(z, z).to_dense()
        expected_train = _dense_formula(kernel, z, z)
        diag = kernel(x2, x2, diag=True)
    torch.testing.assert_close(got, expected, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(got_train, expected_train, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(
        diag, torch.diagonal(_dense_formula(kernel, x2, x2)), rtol=1e-8, atol=1e-10
    )


def test_train_covariance_is_k_s_up_to_jitter():
    z, s = _data((), 10, 4, 6, torch.float64, seed=4)
    kernel = InstructionCoupledKernel(z, s)
    with torch.no_grad():
        torch.testing.assert_close(
            kernel(z, z).to_dense(), kernel.s_kernel.forward(s, s), rtol=0, atol=1e-4
        )


def test_batch_mode_matches_single_kernels():
    z, s = _data((3,), 10, 3, 4, torch.float64, seed=5)
    batched = InstructionCoupledKernel(z, s, batch_shape=torch.Size([3]), identity_tol=0.0)
    x = torch.rand(2, 3, 6, 3, dtype=torch.float64) * 2 - 1  # restarts x tasks x N x d
    batched.eval()
    with torch.no_grad():
        out = batched(x, x).to_dense()
        assert out.shape == (2, 3, 6, 6)
        for t in range(3):
            single = InstructionCoupledKernel(z[t], s[t], identity_tol=0.0).eval()
            for r in range(2):
                torch.testing.assert_close(
                    out[r, t], single(x[r, t], x[r, t]).to_dense(), rtol=1e-8, atol=1e-12
                )


def test_soft_prompt_lengthscale_fixed_at_prior_mode_by_default():
    z, s = _data((), 8, 3, 4, torch.float64)
    kernel = InstructionCoupledKernel(z, s)
    torch.testing.assert_close(
        kernel.z_kernel.lengthscale, torch.full((1, 3), LENGTHSCALE_PRIOR_MODE, dtype=torch.float64)
    )
    assert not kernel.z_kernel.raw_lengthscale.requires_grad
    assert kernel.s_kernel.raw_lengthscale.requires_grad


def test_fast_posterior_matches_gpytorch_posterior():
    z, s = _data((2,), 14, 3, 5, torch.float64, seed=6)
    y = s.mean(-1)
    covar = make_covar_module(
        "instruction_coupled", train_z=z, train_s=s, batch_shape=torch.Size([2])
    )
    gp = SingleTaskGP(z, y.unsqueeze(-1), covar_module=covar).eval()
    fast = CoupledPosteriorModel(gp)
    x = torch.rand(4, 2, 5, 3, dtype=torch.float64) * 2 - 1
    x[0, :, 0] = z[:, 0]
    with torch.no_grad():
        p1, p2 = gp.posterior(x), fast.posterior(x)
    torch.testing.assert_close(p2.mean, p1.mean, rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(
        p2.distribution.covariance_matrix, p1.distribution.covariance_matrix, rtol=1e-6, atol=1e-10
    )


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_kernel_rejects_non_finite_training_data(bad):
    z, s = _data((), 6, 2, 3, torch.float64)
    z[2, 1] = bad
    with pytest.raises(OptimizerError, match="NaN or inf"):
        InstructionCoupledKernel(z, s)


def test_kernel_rejects_mismatched_shapes():
    z, s = _data((), 6, 2, 3, torch.float64)
    with pytest.raises(OptimizerError, match="one score vector per evaluated soft prompt"):
        InstructionCoupledKernel(z, s[:5])
    with pytest.raises(OptimizerError, match="unknown kernel"):
        make_covar_module("rbf", train_z=z, train_s=s)
