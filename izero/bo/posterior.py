"""A fast posterior for GPs with the instruction-coupled kernel.

With ``c = k_Z(Z, X)`` (``n x q``), the instruction-coupled kernel gives ``k(X, Z) = c^T R`` and
``k(X, X) = c^T M c`` for fixed ``n x n`` matrices ``M = K_Z^-1 K_S K_Z^-1`` and ``R = M K_Z``.
The GP posterior (noise-free latent function) is therefore

    mean(X) = mu + c^T beta,        cov(X) = c^T P c,

with ``beta = s R (K + sigma^2 I)^-1 (y - mu)`` and ``P = s M - s^2 R (K + sigma^2 I)^-1 R^T``
computed once per fitted model (``s``: outputscale, ``K``: training covariance). Each
acquisition evaluation then costs one ``n x n`` by ``n x q`` product per candidate set instead
of GPyTorch's generic prediction path (kernel, cross-covariance and triangular solves).
"""

from __future__ import annotations

import torch
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.posteriors.gpytorch import GPyTorchPosterior
from gpytorch.distributions import MultivariateNormal
from linear_operator import to_linear_operator
from linear_operator.utils.cholesky import psd_safe_cholesky
from torch import Tensor

from izero.bo.kernels import InstructionCoupledKernel
from izero.errors import OptimizerError


class CoupledPosteriorModel(Model):
    """Read-only posterior of a fitted (batched) ``SingleTaskGP`` with the coupled kernel.

    Args:
        gp: a fitted ``SingleTaskGP`` whose ``covar_module`` is
            ``ScaleKernel(InstructionCoupledKernel)``, batch shape ``[tasks]`` or none.

    ``posterior(X)`` for ``X: *b x tasks x q x d`` returns the same distribution as
    ``gp.posterior(X)`` (latent function, outcome transform undone).
    """

    _num_outputs = 1

    def __init__(self, gp: SingleTaskGP) -> None:
        super().__init__()
        base = gp.covar_module.base_kernel
        if not isinstance(base, InstructionCoupledKernel):
            raise OptimizerError(
                "CoupledPosteriorModel needs a ScaleKernel(InstructionCoupledKernel) GP, got "
                f"{type(base).__name__}; use the GP's own posterior for other kernels"
            )
        gp.eval()
        self.kernel = base
        self.outcome_transform = getattr(gp, "outcome_transform", None)
        with torch.no_grad():
            middle, right, train = base._mats()
            scale = gp.covar_module.outputscale[..., None, None]
            noise = gp.likelihood.noise.unsqueeze(-1)  # batch x 1 x 1
            n = train.shape[-1]
            eye = torch.eye(n, dtype=train.dtype, device=train.device)
            chol = psd_safe_cholesky(scale * train + noise * eye)
            mean0 = gp.mean_module.constant.detach()  # batch
            resid = (gp.train_targets - mean0.unsqueeze(-1)).unsqueeze(-1)  # batch x n x 1
            alpha = torch.cholesky_solve(resid, chol)
            self.beta = (scale * right @ alpha).squeeze(-1)  # batch x n
            v = torch.linalg.solve_triangular(chol, scale * right.mT, upper=False)
            p = scale * middle - v.mT @ v
            self.p = 0.5 * (p + p.mT)  # batch x n x n
            self.mean0 = mean0

    @property
    def num_outputs(self) -> int:
        return self._num_outputs

    @property
    def batch_shape(self) -> torch.Size:
        return self.kernel.train_z.shape[:-2]

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform=None,
        **kwargs,
    ) -> GPyTorchPosterior:
        """Posterior of the latent function at ``X: *b x tasks x q x d`` (q-point joint)."""
        if observation_noise is not False:
            raise OptimizerError("CoupledPosteriorModel gives the noise-free posterior only")
        c = self.kernel._cross(X)  # *b x T x n x q
        mean = self.mean0.unsqueeze(-1) + (c.mT @ self.beta.unsqueeze(-1)).squeeze(-1)
        cov = c.mT @ (self.p @ c)
        cov = 0.5 * (cov + cov.mT)
        # a linear operator keeps the MVN lazy: sampling uses a jittered (psd-safe) Cholesky
        posterior = GPyTorchPosterior(MultivariateNormal(mean, to_linear_operator(cov)))
        if self.outcome_transform is not None:
            posterior = self.outcome_transform.untransform_posterior(posterior)
        if posterior_transform is not None:
            posterior = posterior_transform(posterior)
        return posterior
