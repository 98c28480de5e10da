"""Batched GP models over soft prompts: build, fit (with warm starts) and hyper-parameter I/O."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import torch
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood
from torch import Tensor

from izero.bo.kernels import make_covar_module
from izero.errors import OptimizerError

logger = logging.getLogger(__name__)


def build_model(
    *,
    kernel: str,
    train_z: Tensor,
    train_y: Tensor,
    train_s: Tensor,
    jitter: float | None = None,
    learn_z_lengthscale: bool = False,
) -> SingleTaskGP:
    """A ``SingleTaskGP`` with batch shape ``[tasks]`` and standardised outcomes.

    Args:
        kernel: ``"instruction_coupled"`` or ``"matern"``.
        train_z: ``tasks x n x d`` soft prompts.
        train_y: ``tasks x n`` dev scores.
        train_s: ``tasks x n x m`` score vectors.
        learn_z_lengthscale: see :class:`izero.bo.kernels.InstructionCoupledKernel`.
    """
    batch_shape = train_z.shape[:-2]
    covar = make_covar_module(
        kernel,
        train_z=train_z,
        train_s=train_s,
        batch_shape=batch_shape,
        jitter=jitter,
        learn_z_lengthscale=learn_z_lengthscale,
    )
    return SingleTaskGP(
        train_X=train_z,
        train_Y=train_y.unsqueeze(-1),
        covar_module=covar,
        outcome_transform=Standardize(m=1, batch_shape=batch_shape),
    )


def _accept_warnings(warning: object) -> bool:
    """Treat optimiser warnings as benign: in a batched fit one task's ABNORMAL line search
    would otherwise make BoTorch refit *every* task from resampled priors (and, after five
    attempts, fail). The parameters L-BFGS-B reached are kept; ``fit_two_starts`` compares
    starts per task on the MAP objective."""
    return True


def fit_model(model: SingleTaskGP, *, maxiter: int, max_attempts: int = 5) -> None:
    """Fit hyper-parameters (MAP, L-BFGS-B on the summed marginal log likelihood of all tasks).

    Raises:
        OptimizerError: the fit failed even after BoTorch's retries.
    """
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    try:
        fit_gpytorch_mll(
            mll,
            optimizer_kwargs={"options": {"maxiter": maxiter}},
            warning_handler=_accept_warnings,
            max_attempts=max_attempts,
        )
    except Exception as exc:  # BoTorch raises ModelFittingError and numerical errors
        raise OptimizerError(
            f"GP hyper-parameter fit failed ({type(exc).__name__}: {exc}); check the "
            "observations for constant or degenerate scores"
        ) from exc
    model.eval()


def task_hyperparameters(model: SingleTaskGP, index: int) -> dict[str, Tensor]:
    """The raw hyper-parameters of task ``index`` of a batched model (detached CPU copies)."""
    return {
        name: param.detach()[index].clone().cpu()
        for name, param in model.named_parameters()
        if param.requires_grad
    }


def load_task_hyperparameters(
    model: SingleTaskGP, per_task: Sequence[Mapping[str, Tensor] | None]
) -> int:
    """Copy saved per-task hyper-parameters into a batched model; returns tasks warm-started.

    A task's entry may hold a subset of the model's trainable parameters (the rest keep their
    initialisation); it is skipped entirely if it names a parameter the model lacks or a shape
    differs (e.g. another kernel, d or m).
    """
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    loaded = 0
    with torch.no_grad():
        for index, saved in enumerate(per_task):
            if not saved or not set(saved) <= set(params):
                continue
            if any(tuple(v.shape) != tuple(params[k].shape[1:]) for k, v in saved.items()):
                continue
            for name, value in saved.items():
                params[name][index].copy_(value.to(params[name]))
            loaded += 1
    logger.debug("warm-started %d of %d tasks", loaded, len(per_task))
    return loaded


def per_task_log_posterior(model: SingleTaskGP) -> Tensor:
    """``tasks`` values of log marginal likelihood + log prior (MAP objective) per task."""
    model.train()
    with torch.no_grad():
        (train_x,) = model.train_inputs
        output = model.likelihood(model(train_x))
        value = output.log_prob(model.train_targets)
        batch = value.shape
        for _, module, prior, closure, _ in model.named_priors():
            value = value + prior.log_prob(closure(module)).reshape(*batch, -1).sum(-1)
    model.eval()
    return value


def fit_two_starts(
    *,
    kernel: str,
    train_z: Tensor,
    train_y: Tensor,
    train_s: Tensor,
    warm: Sequence[Mapping[str, Tensor] | None],
    maxiter: int,
    jitter: float | None = None,
    learn_z_lengthscale: bool = False,
) -> tuple[SingleTaskGP, Tensor]:
    """Fit each task from its warm start and from a second start, keep the higher MAP objective.

    A warm start can stay in a worse local optimum of the marginal likelihood once more data
    arrive: with the coupled kernel, score-vector lengthscales stuck near the prior mode (1/3)
    where distinct score vectors are uncorrelated. The second start is the warm start with the
    score-vector lengthscales re-initialised (median heuristic) for the coupled kernel, and the
    default initialisation otherwise. Both are fitted as one batched model of ``2 x tasks``
    (twice the cost per iteration).

    Returns:
        The fitted ``tasks``-batched model and a ``tasks`` bool tensor, True where the fresh
        start won.

    Raises:
        OptimizerError: the joint fit failed (one attempt only: the caller falls back to a
            plain warm-started fit rather than refitting ``2 x tasks`` from resampled priors).
    """
    num_tasks = train_z.shape[0]
    both = build_model(
        kernel=kernel,
        train_z=torch.cat([train_z, train_z]),
        train_y=torch.cat([train_y, train_y]),
        train_s=torch.cat([train_s, train_s]),
        jitter=jitter,
        learn_z_lengthscale=learn_z_lengthscale,
    )
    if kernel == "instruction_coupled":
        second = [
            {k: v for k, v in h.items() if ".s_kernel." not in k} if h else None for h in warm
        ]
    else:
        second = [None] * num_tasks
    load_task_hyperparameters(both, [*warm, *second])
    fit_model(both, maxiter=maxiter, max_attempts=1)
    value = per_task_log_posterior(both)
    fresh_wins = value[num_tasks:] > value[:num_tasks]
    chosen = [
        task_hyperparameters(both, t + num_tasks if bool(fresh_wins[t]) else t)
        for t in range(num_tasks)
    ]
    model = build_model(
        kernel=kernel,
        train_z=train_z,
        train_y=train_y,
        train_s=train_s,
        jitter=jitter,
        learn_z_lengthscale=learn_z_lengthscale,
    )
    load_task_hyperparameters(model, chosen)
    model.eval()
    return model, fresh_wins
