"""Options of the batch proposer (frozen, validated once)."""

from __future__ import annotations

from dataclasses import dataclass

from izero.bo.kernels import KERNEL_KINDS
from izero.errors import ConfigError

ACQUISITIONS = ("qlogei", "qlognei")


@dataclass(frozen=True)
class ProposerOptions:
    """How :class:`izero.bo.BatchProposer` fits GPs and optimises batch expected improvement.

    Attributes:
        kernel: ``"instruction_coupled"`` (InstructZero's kernel on z and score vectors) or
            ``"matern"`` (Matern-5/2 ARD on z only).
        acquisition: ``"qlogei"`` (q-LogEI against the best observed mean) or ``"qlognei"``
            (noisy q-LogEI against the in-sample posterior).
        num_restarts: candidate batches per task refined by the optimiser.
        raw_samples: random candidate batches per task scored to pick the restarts.
        local_fraction: share of raw candidate points drawn around the best observed points
            (the rest are Sobol points in the box); InstructZero starts from its top points.
        top_k: how many best observed points seed the local candidates.
        local_scale: standard deviation of the local perturbations, in box units (fraction of
            each side's width).
        num_steps: Adam steps of the projected acquisition ascent (all tasks and restarts at
            once).
        learning_rate: Adam step size, in box units.
        mc_samples: quasi-MC samples of the q-batch posterior per task.
        fit_maxiter: L-BFGS iterations when fitting hyper-parameters from scratch.
        warm_fit_maxiter: L-BFGS iterations when warm-starting from the previous call's
            hyper-parameters of the same task key.
        warm_start: reuse each task key's hyper-parameters from the previous call.
        warm_fresh_start: when warm-starting, also fit a default-initialised copy of each task
            in the same batched fit and keep whichever reaches the higher MAP objective (a warm
            start can stay in a worse local optimum as data arrive; costs 2x per iteration).
        lower, upper: the box ``[lower, upper]^d`` of soft prompts.
        dedup_tol: proposals closer than this (max-norm, box units) to each other or to an
            evaluated point are replaced by fresh Sobol points.
        learn_z_lengthscale: fit the soft-prompt lengthscales of the instruction-coupled kernel
            (default: fixed at the prior mode, their MAP; see ``InstructionCoupledKernel``).
        jitter: diagonal jitter of ``K_Z`` (None: per-dtype default of the kernel).
        max_batch_tasks: most tasks fitted and optimised together in one batched model
            (bounds memory; tasks of different shapes are always in separate groups).
        isolate_tasks: fit and optimise every task on its own (default), so that a task's
            proposals depend only on its own observations, seed and warm start, bit for bit,
            whatever other tasks share the call. ``False`` batches tasks of the same shape into
            one model: faster on CPU, but L-BFGS stops on the batch's joint criterion and
            batched linear algebra rounds differently, so a task's proposals then depend on
            which tasks it was batched with (see ``benchmarks/bo_overhead.py`` for the cost).
    """

    kernel: str = "instruction_coupled"
    acquisition: str = "qlogei"
    num_restarts: int = 1
    raw_samples: int = 32
    local_fraction: float = 0.75
    top_k: int = 5
    local_scale: float = 0.05
    num_steps: int = 40
    learning_rate: float = 0.01
    mc_samples: int = 64
    fit_maxiter: int = 150
    warm_fit_maxiter: int = 20
    warm_start: bool = True
    warm_fresh_start: bool = True
    lower: float = -1.0
    upper: float = 1.0
    dedup_tol: float = 1e-3
    learn_z_lengthscale: bool = False
    jitter: float | None = None
    max_batch_tasks: int = 64
    isolate_tasks: bool = True

    def __post_init__(self) -> None:
        if self.kernel not in KERNEL_KINDS:
            raise ConfigError("kernel", self.kernel, f"one of {KERNEL_KINDS}")
        if self.acquisition not in ACQUISITIONS:
            raise ConfigError("acquisition", self.acquisition, f"one of {ACQUISITIONS}")
        for name in (
            "num_restarts",
            "raw_samples",
            "top_k",
            "mc_samples",
            "fit_maxiter",
            "warm_fit_maxiter",
            "max_batch_tasks",
        ):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(name, value, "an integer >= 1")
        if not isinstance(self.num_steps, int) or self.num_steps < 0:
            raise ConfigError("num_steps", self.num_steps, "an integer >= 0")
        if self.raw_samples < self.num_restarts:
            raise ConfigError(
                "raw_samples", self.raw_samples, f">= num_restarts ({self.num_restarts})"
            )
        if not 0.0 <= self.local_fraction <= 1.0:
            raise ConfigError("local_fraction", self.local_fraction, "a number in [0, 1]")
        for name in ("local_scale", "learning_rate", "dedup_tol"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, getattr(self, name), "a number > 0")
        if not self.lower < self.upper:
            raise ConfigError("upper", self.upper, f"a number > lower ({self.lower})")
        if not isinstance(self.isolate_tasks, bool):
            raise ConfigError("isolate_tasks", self.isolate_tasks, "true or false")
        if self.jitter is not None and not self.jitter > 0:
            raise ConfigError("jitter", self.jitter, "None or a number > 0")
