"""Batch expected improvement for many tasks at once, optimised together.

All tasks of a group share one batched GP (batch shape ``[tasks]``). The acquisition is
evaluated on candidate sets of shape ``restarts x tasks x q x d`` in one posterior call, so the
tasks' q-batches are refined together by a projected Adam ascent whose updates are elementwise:
each task's trajectory does not depend on the other tasks in the group.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.logei import qLogExpectedImprovement, qLogNoisyExpectedImprovement
from botorch.models.model import Model
from botorch.posteriors import Posterior
from botorch.sampling.base import MCSampler
from botorch.utils.sampling import draw_sobol_normal_samples
from gpytorch.utils.warnings import NumericalWarning
from torch import Tensor
from torch.quasirandom import SobolEngine

from izero.bo.options import ProposerOptions

logger = logging.getLogger(__name__)

RAW_EVAL_CHUNK = 16
"""Raw candidate batches scored per posterior call (bounds memory)."""


class PerTaskQMCSampler(MCSampler):
    """Fixed quasi-MC normal base samples with an independent scrambled Sobol sequence per task.

    For posteriors with batch shape ``*b x tasks`` and ``q'`` points, the base samples are
    ``num_samples x *b x tasks x q' x 1``: the same for every leading batch (candidate
    restarts), different per task and determined by that task's seed alone.
    """

    def __init__(self, *, num_samples: int, seeds: Sequence[int]) -> None:
        super().__init__(sample_shape=torch.Size([num_samples]))
        self.seeds = [int(s) for s in seeds]
        self._base_by_q: dict[tuple[int, torch.dtype, torch.device], Tensor] = {}

    def _base(self, q: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        key = (q, dtype, device)
        if key not in self._base_by_q:
            draws = [
                draw_sobol_normal_samples(
                    d=q, n=self.sample_shape[0], device=device, dtype=dtype, seed=seed
                )
                for seed in self.seeds
            ]
            self._base_by_q[key] = torch.stack(draws, dim=1)  # mc x T x q
        return self._base_by_q[key]

    def forward(self, posterior: Posterior) -> Tensor:
        shape = posterior.base_sample_shape  # *b x T x q' (x 1 for multi-output layouts)
        batch = posterior.batch_shape  # *b x T
        event = shape[len(batch) :]
        base = self._base(event[0], posterior.dtype, posterior.device)  # mc x T x q'
        base = base.view(
            base.shape[0], *([1] * (len(batch) - 1)), *base.shape[1:], *([1] * (len(event) - 1))
        )
        base = base.expand(*self.sample_shape, *shape)
        return posterior.rsample_from_base_samples(self.sample_shape, base)


def make_acquisition(
    *,
    model: Model,
    kind: str,
    train_z: Tensor,
    train_y: Tensor,
    seeds: Sequence[int],
    mc_samples: int,
) -> AcquisitionFunction:
    """q-LogEI or q-LogNEI on a batched model.

    Args:
        train_z: ``tasks x n x d`` evaluated soft prompts (qLogNEI's baseline).
        train_y: ``tasks x n`` observed scores (qLogEI's incumbent is their max per task).
    Returns:
        An acquisition mapping ``*b x tasks x q x d`` to ``*b x tasks`` log-EI values.
    """
    sampler = PerTaskQMCSampler(num_samples=mc_samples, seeds=seeds)
    if kind == "qlogei":
        return qLogExpectedImprovement(
            model=model, best_f=train_y.max(dim=-1).values, sampler=sampler
        )
    return qLogNoisyExpectedImprovement(
        model=model, X_baseline=train_z, sampler=sampler, prune_baseline=False, cache_root=False
    )


def raw_candidates(
    *,
    train_z: Tensor,
    train_y: Tensor,
    q: int,
    seed: int,
    options: ProposerOptions,
) -> Tensor:
    """``raw_samples x q x d`` candidate batches for one task, reproducible for ``seed``.

    A share ``local_fraction`` of the points are Gaussian perturbations (sd ``local_scale`` of
    the box width) of the ``top_k`` best observed points; the rest are scrambled Sobol points.
    """
    n, d = train_z.shape
    lo, hi = options.lower, options.upper
    width = hi - lo
    count = options.raw_samples * q
    gen = torch.Generator().manual_seed(int(seed))
    sobol = SobolEngine(d, scramble=True, seed=int(seed)).draw(count, dtype=train_z.dtype)
    sobol = lo + width * sobol.to(train_z.device)
    top = train_y.topk(min(options.top_k, n)).indices
    pick = top[torch.randint(len(top), (count,), generator=gen)]
    noise = torch.randn(count, d, generator=gen, dtype=train_z.dtype) * options.local_scale * width
    local = (train_z[pick] + noise.to(train_z.device)).clamp(lo, hi)
    use_local = torch.rand(count, generator=gen) < options.local_fraction
    points = torch.where(use_local.to(train_z.device).unsqueeze(-1), local, sobol)
    return points.view(options.raw_samples, q, d)


def optimize_acquisition(
    acq: AcquisitionFunction,
    *,
    train_z: Tensor,
    train_y: Tensor,
    q: int,
    seeds: Sequence[int],
    options: ProposerOptions,
) -> tuple[Tensor, Tensor]:
    """:func:`_optimize_acquisition` with GPyTorch's jitter warnings silenced.

    The q-point posterior covariances near evaluated points are nearly singular by design of
    the coupled kernel; sampling adds jitter (``NumericalWarning``) on most steps, which would
    flood the driver's logs. Only that warning category is silenced, only here.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumericalWarning)
        return _optimize_acquisition(
            acq, train_z=train_z, train_y=train_y, q=q, seeds=seeds, options=options
        )


def _optimize_acquisition(
    acq: AcquisitionFunction,
    *,
    train_z: Tensor,
    train_y: Tensor,
    q: int,
    seeds: Sequence[int],
    options: ProposerOptions,
) -> tuple[Tensor, Tensor]:
    """Maximise a batched acquisition for all tasks together.

    Args:
        acq: maps ``*b x tasks x q x d`` to ``*b x tasks``.
        train_z: ``tasks x n x d``; train_y: ``tasks x n``.
    Returns:
        ``tasks x q x d`` best candidates and their ``tasks`` acquisition values.
    """
    num_tasks = train_z.shape[0]
    raw = torch.stack(
        [
            raw_candidates(
                train_z=train_z[t], train_y=train_y[t], q=q, seed=seeds[t], options=options
            )
            for t in range(num_tasks)
        ],
        dim=1,
    )  # raw_samples x T x q x d
    with torch.no_grad():
        raw_values = torch.cat([acq(chunk) for chunk in raw.split(RAW_EVAL_CHUNK)])  # R x T
    order = raw_values.topk(options.num_restarts, dim=0).indices  # restarts x T
    x0 = torch.gather(raw, 0, order[..., None, None].expand(-1, -1, q, train_z.shape[-1]))
    best_x = x0.clone()
    best_v = torch.gather(raw_values, 0, order)
    x = x0.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([x], lr=options.learning_rate * (options.upper - options.lower))
    for _ in range(options.num_steps):
        optimizer.zero_grad()
        values = acq(x)  # restarts x T
        with torch.no_grad():
            better = values > best_v
            best_v = torch.where(better, values, best_v)
            best_x = torch.where(better[..., None, None], x, best_x)
        (-values.sum()).backward()
        optimizer.step()
        with torch.no_grad():
            x.clamp_(options.lower, options.upper)
    if options.num_steps > 0:
        with torch.no_grad():
            values = acq(x)
            better = values > best_v
            best_v = torch.where(better, values, best_v)
            best_x = torch.where(better[..., None, None], x.detach(), best_x)
    winner = best_v.argmax(dim=0)  # T
    arange = torch.arange(num_tasks, device=train_z.device)
    return best_x[winner, arange].detach(), best_v[winner, arange].detach()
