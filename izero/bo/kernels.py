"""GP kernels over soft prompts: the instruction-coupled kernel and plain Matern-5/2.

The instruction-coupled kernel (InstructZero, Chen et al. 2024, eq. 6) is

    k(z, z') = k_Z(z, Z) K_Z^-1 K_S K_Z^-1 k_Z(Z, z')

where ``Z`` (``n x d``) are the evaluated soft prompts, ``S`` (``n x m``) the per-example score
vectors of their instructions, ``K_Z = k_Z(Z, Z)`` and ``K_S = k_S(S, S)``. Both ``k_Z`` and ``k_S``
are Matern-5/2 with ARD lengthscales and a Gamma(3, 6) lengthscale prior. ``K_Z^-1`` is never
formed: it is applied through Cholesky solves of ``K_Z + jitter I``. The kernel is PSD by
construction (``W1^T K_S W2`` with ``W = K_Z^-1 k_Z(Z, .)`` and ``K_S`` PSD).
"""

from __future__ import annotations

import torch
from gpytorch.kernels import Kernel, MaternKernel, ScaleKernel
from gpytorch.priors import GammaPrior
from linear_operator.utils.cholesky import psd_safe_cholesky
from torch import Tensor

from izero.errors import OptimizerError

MATERN_NU = 2.5
"""Smoothness of the Matern kernels (5/2, as in InstructZero)."""
LENGTHSCALE_PRIOR_CONCENTRATION = 3.0
LENGTHSCALE_PRIOR_RATE = 6.0
"""Gamma(3, 6) lengthscale prior (mean 0.5) on both soft prompts and score vectors."""
DEFAULT_JITTER = {torch.float64: 1e-6, torch.float32: 1e-4}
"""Diagonal jitter added to ``K_Z`` before its Cholesky factorisation, per dtype."""
NO_BATCH = torch.Size()
"""Default (empty) hyper-parameter batch shape."""
DEFAULT_IDENTITY_TOL = 1e-4
"""Tolerance of ``||K_Z^-1 k_Z(Z, Z) - I||_F`` under which ``k(Z, Z) = K_S`` is used."""
MIN_INIT_LENGTHSCALE = 0.1
"""Floor of the median-heuristic initial lengthscale of the score-vector kernel."""
KERNEL_KINDS = ("instruction_coupled", "matern")


LENGTHSCALE_PRIOR_MODE = (LENGTHSCALE_PRIOR_CONCENTRATION - 1.0) / LENGTHSCALE_PRIOR_RATE
"""Mode (1/3) of the Gamma(3, 6) lengthscale prior."""


def matern_kernel(*, ard_num_dims: int, batch_shape: torch.Size = NO_BATCH) -> MaternKernel:
    """Matern-5/2 with ARD lengthscales (``batch_shape x 1 x ard_num_dims``) and Gamma(3, 6)."""
    return MaternKernel(
        nu=MATERN_NU,
        ard_num_dims=ard_num_dims,
        batch_shape=batch_shape,
        lengthscale_prior=GammaPrior(LENGTHSCALE_PRIOR_CONCENTRATION, LENGTHSCALE_PRIOR_RATE),
    )


def median_distance(points: Tensor) -> Tensor:
    """``batch x 1 x 1`` median pairwise Euclidean distance of ``points: batch x n x m``.

    The initial score-vector lengthscale (median heuristic), at least
    :data:`MIN_INIT_LENGTHSCALE`: from the default 0.69 many fits stop in a degenerate mode
    with lengthscales at the prior mode, where distinct score vectors are uncorrelated.
    """
    dist = torch.cdist(points.double(), points.double())
    n = points.shape[-2]
    upper = torch.triu_indices(n, n, offset=1)
    pairs = dist[..., upper[0], upper[1]]
    if pairs.shape[-1] == 0:
        median = torch.ones(points.shape[:-2], dtype=torch.float64)
    else:
        median = pairs.median(dim=-1).values
    return median.clamp_min(MIN_INIT_LENGTHSCALE).to(points)[..., None, None]


class InstructionCoupledKernel(Kernel):
    """``k(z, z') = k_Z(z, Z) K_Z^-1 K_S K_Z^-1 k_Z(Z, z')`` (see the module docstring).

    Args:
        train_z: ``batch_shape x n x d`` evaluated soft prompts ``Z``.
        train_s: ``batch_shape x n x m`` per-example score vectors ``S`` of their instructions.
        batch_shape: batch shape of the hyper-parameters (e.g. ``[tasks]``); must equal the
            leading dimensions of ``train_z`` / ``train_s``.
        jitter: added to the diagonal of ``K_Z`` before the Cholesky factorisation (None: the
            per-dtype :data:`DEFAULT_JITTER`); the factorisation retries with more jitter only if
            it fails.
        learn_z_lengthscale: fit the soft-prompt lengthscales. By default they are fixed at the
            Gamma(3, 6) prior mode 1/3: the training covariance ``k(Z, Z) = K_S`` (up to jitter)
            does not depend on them, so their MAP estimate *is* the prior mode (a full fit lands
            there too), and freezing them lets ``K_Z`` be factorised once per fit.
        identity_tol: when ``||K_Z^-1 k_Z(Z, Z) - I||_F`` is below this, ``k(Z, Z)`` is taken
            to be ``K_S`` (exact up to the jitter; see ``_sandwich``). 0 disables it.

    Inputs ``x1: *batch x N1 x d`` and ``x2: *batch x N2 x d`` may carry extra leading batch
    dimensions that broadcast against ``batch_shape``. In eval mode the middle matrix
    ``K_Z^-1 K_S K_Z^-1`` is cached (detached) until the hyper-parameters change; in train mode
    the factorisation of ``K_Z`` is cached while the soft-prompt kernel's parameters are frozen
    (``requires_grad=False``), which makes fitting the remaining hyper-parameters cheap.
    """

    has_lengthscale = False

    def __init__(
        self,
        train_z: Tensor,
        train_s: Tensor,
        *,
        batch_shape: torch.Size = NO_BATCH,
        jitter: float | None = None,
        learn_z_lengthscale: bool = False,
        identity_tol: float = DEFAULT_IDENTITY_TOL,
    ) -> None:
        super().__init__(batch_shape=torch.Size(batch_shape))
        if train_z.dim() < 2 or train_s.dim() < 2 or train_z.shape[:-1] != train_s.shape[:-1]:
            raise OptimizerError(
                "InstructionCoupledKernel expects train_z of shape batch x n x d and train_s of "
                f"shape batch x n x m with the same batch x n; got {tuple(train_z.shape)} and "
                f"{tuple(train_s.shape)}. Pass one score vector per evaluated soft prompt."
            )
        if train_z.shape[:-2] != self.batch_shape:
            raise OptimizerError(
                f"train_z batch dimensions {tuple(train_z.shape[:-2])} must equal batch_shape "
                f"{tuple(self.batch_shape)}"
            )
        for name, value in (("train_z", train_z), ("train_s", train_s)):
            if not torch.isfinite(value).all():
                raise OptimizerError(f"{name} holds NaN or inf values; drop those rows first")
        self.register_buffer("train_z", train_z)
        self.register_buffer("train_s", train_s.to(train_z))
        self.jitter = jitter
        self.identity_tol = identity_tol
        self.z_kernel = matern_kernel(ard_num_dims=train_z.shape[-1], batch_shape=batch_shape)
        self.s_kernel = matern_kernel(ard_num_dims=train_s.shape[-1], batch_shape=batch_shape)
        self._cache: tuple[list[Tensor], tuple[Tensor, Tensor, Tensor]] | None = None
        if not learn_z_lengthscale:
            with torch.no_grad():
                self.z_kernel.lengthscale = torch.full_like(
                    self.z_kernel.lengthscale, LENGTHSCALE_PRIOR_MODE
                )
            self.z_kernel.raw_lengthscale.requires_grad_(False)
        with torch.no_grad():
            self.s_kernel.lengthscale = median_distance(train_s).expand_as(
                self.s_kernel.lengthscale
            )
        self.to(dtype=train_z.dtype, device=train_z.device)
        self._z_cache: tuple[list[Tensor], Tensor, Tensor] | None = None

    def _jitter(self) -> float:
        if self.jitter is not None:
            return self.jitter
        return DEFAULT_JITTER.get(self.train_z.dtype, DEFAULT_JITTER[torch.float32])

    @staticmethod
    def _same(saved: list[Tensor], params: list[Tensor]) -> bool:
        return len(saved) == len(params) and all(
            a.shape == b.shape and torch.equal(a, b) for a, b in zip(saved, params, strict=True)
        )

    def _z_frozen(self) -> bool:
        return not any(p.requires_grad for p in self.z_kernel.parameters())

    def _z_factor(self) -> tuple[Tensor, Tensor]:
        """Cholesky factor of ``K_Z + jitter I`` and ``K_Z^-1 k_Z(Z, Z)`` (both ``n x n``).

        Cached (detached) while the soft-prompt hyper-parameters are frozen or in eval mode.
        """
        cacheable = self._z_frozen() or not self.training
        params = [p.detach() for p in self.z_kernel.parameters()]
        if cacheable and self._z_cache is not None and self._same(self._z_cache[0], params):
            return self._z_cache[1], self._z_cache[2]
        z = self.train_z
        eye = torch.eye(z.shape[-2], dtype=z.dtype, device=z.device)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not cacheable):
            k_zz = self.z_kernel.forward(z, z)
            chol = psd_safe_cholesky(k_zz + self._jitter() * eye)
            weights = torch.cholesky_solve(k_zz, chol)
        if cacheable:
            self._z_cache = ([p.clone() for p in params], chol, weights)
        return chol, weights

    def _compute_mats(self) -> tuple[Tensor, Tensor, Tensor]:
        """``M = K_Z^-1 K_S K_Z^-1``, ``R = M k_Z(Z, Z)`` and ``k(Z, Z) = W^T K_S W``.

        All ``batch_shape x n x n``; ``K_Z^-1`` is applied by Cholesky solves.
        """
        chol, weights = self._z_factor()
        k_ss = self.s_kernel.forward(self.train_s, self.train_s)
        left = torch.cholesky_solve(k_ss, chol)  # K_Z^-1 K_S
        middle = torch.cholesky_solve(left.mT, chol)  # K_Z^-1 K_S K_Z^-1 (K_S symmetric)
        right = left @ weights  # K_Z^-1 K_S K_Z^-1 k_Z(Z, Z)
        return 0.5 * (middle + middle.mT), right, self._sandwich(weights, k_ss)

    def _mats(self) -> tuple[Tensor, Tensor, Tensor]:
        if self.training:
            return self._compute_mats()
        params = [p.detach() for p in self.parameters()]
        if self._cache is not None and self._same(self._cache[0], params):
            return self._cache[1]
        with torch.no_grad():
            mats = self._compute_mats()
        self._cache = ([p.clone() for p in params], mats)
        return mats

    def _train_covariance(self) -> Tensor:
        """``k(Z, Z) = W^T K_S W`` with ``W = K_Z^-1 k_Z(Z, Z)`` (``batch_shape x n x n``)."""
        if not self.training:
            return self._mats()[2]
        _, weights = self._z_factor()
        return self._sandwich(weights, self.s_kernel.forward(self.train_s, self.train_s))

    def _sandwich(self, weights: Tensor, k_ss: Tensor) -> Tensor:
        """``W^T K_S W``, or ``K_S`` itself when ``W`` is the identity to within tolerance.

        ``W = K_Z^-1 k_Z(Z, Z)`` differs from ``I`` only through the jitter. When
        ``max_batch ||W - I||_F <= identity_tol`` (checked on the detached ``W``), ``K_S`` is
        used: the error is at most ``(2 tol + tol^2) ||K_S||_2`` and this skips four
        ``n x n x n`` products per evaluation of the marginal likelihood.
        """
        eye = torch.eye(weights.shape[-1], dtype=weights.dtype, device=weights.device)
        with torch.no_grad():
            deviation = (weights - eye).norm(dim=(-2, -1)).max() if weights.numel() else 0.0
        if deviation <= self.identity_tol:
            return k_ss
        cov = weights.mT @ k_ss @ weights
        return 0.5 * (cov + cov.mT)

    def _is_train(self, x: Tensor) -> bool:
        z = self.train_z
        if x.shape[-2:] != z.shape[-2:]:
            return False
        try:
            return torch.equal(x, z.expand_as(x))
        except RuntimeError:
            return False

    def _cross(self, x: Tensor) -> Tensor:
        """``*batch x n x N`` matrix ``k_Z(Z, x)`` for ``x: *batch x N x d``."""
        z = self.train_z
        batch = torch.broadcast_shapes(z.shape[:-2], x.shape[:-2])
        z = z.expand(*batch, *z.shape[-2:])
        x = x.expand(*batch, *x.shape[-2:])
        return self.z_kernel.forward(z, x)

    def forward(
        self, x1: Tensor, x2: Tensor, diag: bool = False, last_dim_is_batch: bool = False, **params
    ) -> Tensor:
        if last_dim_is_batch:
            raise OptimizerError("InstructionCoupledKernel does not support last_dim_is_batch")
        train1, train2 = self._is_train(x1), self._is_train(x2)
        if train1 and train2:
            cov = self._train_covariance()
            batch = torch.broadcast_shapes(x1.shape[:-2], x2.shape[:-2], cov.shape[:-2])
            cov = cov.expand(*batch, *cov.shape[-2:])
            return torch.diagonal(cov, dim1=-2, dim2=-1) if diag else cov
        middle, right, _ = self._mats()
        if not diag and train2:  # k(x, Z) = k_Z(x, Z) M k_Z(Z, Z): no n x n x n per batch
            return self._cross(x1).mT @ right
        if not diag and train1:
            return (self._cross(x2).mT @ right).mT
        c1 = self._cross(x1)
        same = x1 is x2 or (x1.shape == x2.shape and torch.equal(x1, x2))
        c2 = c1 if same else self._cross(x2)
        right2 = middle @ c2  # *batch x n x N2
        if diag:
            return (c1 * right2).sum(dim=-2)
        out = c1.mT @ right2
        return 0.5 * (out + out.mT) if same else out


def make_covar_module(
    kind: str,
    *,
    train_z: Tensor,
    train_s: Tensor | None = None,
    batch_shape: torch.Size = NO_BATCH,
    jitter: float | None = None,
    learn_z_lengthscale: bool = False,
) -> ScaleKernel:
    """The GP covariance ``outputscale * k``: ``k`` instruction-coupled or Matern-5/2 ARD on z.

    Args:
        kind: ``"instruction_coupled"`` or ``"matern"``.
        train_z: ``batch_shape x n x d`` soft prompts.
        train_s: ``batch_shape x n x m`` score vectors (required for ``instruction_coupled``).
    """
    if kind == "matern":
        base: Kernel = matern_kernel(ard_num_dims=train_z.shape[-1], batch_shape=batch_shape)
    elif kind == "instruction_coupled":
        if train_s is None:
            raise OptimizerError("the instruction_coupled kernel needs train_s (score vectors)")
        base = InstructionCoupledKernel(
            train_z,
            train_s,
            batch_shape=batch_shape,
            jitter=jitter,
            learn_z_lengthscale=learn_z_lengthscale,
        )
    else:
        raise OptimizerError(f"unknown kernel {kind!r}; expected one of {KERNEL_KINDS}")
    return ScaleKernel(base, batch_shape=batch_shape)
