"""``BatchProposer``: q new soft prompts per task from batch q-EI, many tasks at once."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence

import torch
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from torch import Tensor

from izero.bo.acquisition import make_acquisition, optimize_acquisition
from izero.bo.dedup import deduplicate
from izero.bo.kernels import InstructionCoupledKernel
from izero.bo.models import (
    build_model,
    fit_model,
    fit_two_starts,
    load_task_hyperparameters,
    task_hyperparameters,
)
from izero.bo.observations import TaskObservations
from izero.bo.options import ProposerOptions
from izero.bo.posterior import CoupledPosteriorModel
from izero.errors import OptimizerError

logger = logging.getLogger(__name__)

STATE_VERSION = 1
MIN_OBSERVATIONS = 2
"""A task needs at least this many observations for a GP (use ``initial_design`` first)."""
COMPUTE_DTYPE = torch.float64
"""GP fitting and acquisition run in double precision."""


class BatchProposer:
    """Proposes ``q`` soft prompts per task with qLogEI/qLogNEI on (batched) GPs.

    With ``options.isolate_tasks`` (the default) each task is fitted and optimised alone, so its
    proposals are the same bit for bit whatever else is proposed in the same call; otherwise
    tasks with the same ``(n, d, m)`` are fitted as one batched GP (batch shape ``[tasks]``) and
    their acquisitions optimised together. With ``keys``, each task's fitted hyper-parameters
    are kept and warm-start the next call for the same key (see :meth:`state_dict`).

    Args:
        options: fitting and acquisition settings (None: :class:`ProposerOptions` defaults).
    """

    def __init__(self, options: ProposerOptions | None = None) -> None:
        self.options = options if options is not None else ProposerOptions()
        self._hyper: dict[str, dict[str, Tensor]] = {}

    def propose(
        self,
        observations: Sequence[TaskObservations],
        *,
        q: int,
        seeds: Sequence[int],
        keys: Sequence[str] | None = None,
    ) -> list[Tensor]:
        """``q x d`` new soft prompts per task, in the box, distinct and not yet evaluated.

        Args:
            observations: one :class:`TaskObservations` per task, each with ``n >= 2``.
            q: points to propose per task.
            seeds: one seed per task; a task's proposals are reproducible for the same
                observations, seed and warm-start state.
            keys: optional stable task names for hyper-parameter warm starts across calls.
        Returns:
            One ``q x d`` tensor per task (dtype and device of that task's ``z``).
        """
        opts = self.options
        if not isinstance(q, int) or q < 1:
            raise OptimizerError(f"q must be an integer >= 1, got {q!r}")
        if len(seeds) != len(observations):
            raise OptimizerError(
                f"need one seed per task: got {len(seeds)} seeds for {len(observations)} tasks"
            )
        if keys is not None and len(keys) != len(observations):
            raise OptimizerError(f"got {len(keys)} keys for {len(observations)} tasks")
        for i, obs in enumerate(observations):
            if not isinstance(obs, TaskObservations):
                raise OptimizerError(f"task {i}: expected TaskObservations, got {type(obs)}")
            if obs.n < MIN_OBSERVATIONS:
                raise OptimizerError(
                    f"task {i} has {obs.n} observation(s); a GP needs >= {MIN_OBSERVATIONS}: "
                    "evaluate an initial_design first"
                )
            outside = (obs.z < opts.lower - 1e-9) | (obs.z > opts.upper + 1e-9)
            if outside.any():
                raise OptimizerError(
                    f"task {i}: z has values outside the box [{opts.lower}, {opts.upper}]; "
                    "pass the soft prompts that were evaluated, or change ProposerOptions bounds"
                )
        groups: dict[tuple[int, int, int], list[int]] = defaultdict(list)
        for i, obs in enumerate(observations):
            groups[(obs.n, obs.d, obs.m)].append(i)
        size = 1 if opts.isolate_tasks else opts.max_batch_tasks
        results: list[Tensor | None] = [None] * len(observations)
        for indices in groups.values():
            for start in range(0, len(indices), size):
                chunk = indices[start : start + size]
                points = self._propose_group(
                    [observations[i] for i in chunk],
                    q=q,
                    seeds=[int(seeds[i]) for i in chunk],
                    keys=None if keys is None else [keys[i] for i in chunk],
                )
                for i, p in zip(chunk, points, strict=True):
                    results[i] = p
        return [r for r in results if r is not None]

    def _new_model(self, train_z: Tensor, train_y: Tensor, train_s: Tensor) -> SingleTaskGP:
        """An unfitted ``tasks``-batched GP of the configured kernel on these observations."""
        opts = self.options
        return build_model(
            kernel=opts.kernel,
            train_z=train_z,
            train_y=train_y,
            train_s=train_s,
            jitter=opts.jitter,
            learn_z_lengthscale=opts.learn_z_lengthscale,
        )

    def _cold_fit_or_prior(
        self, train_z: Tensor, train_y: Tensor, train_s: Tensor, *, failed: bool
    ) -> SingleTaskGP:
        """A model fitted from scratch; if even that fit fails, one at its prior-mode
        hyper-parameters (a valid GP: the round still gets model-based proposals instead of
        stopping a sweep). ``failed``: a cold fit already failed, go straight to the prior."""
        opts = self.options
        model = self._new_model(train_z, train_y, train_s)
        if not failed:
            try:
                fit_model(model, maxiter=opts.fit_maxiter)
                return model
            except OptimizerError as exc:
                logger.warning("fit from scratch failed too (%s)", exc)
        logger.warning("keeping prior-mode hyper-parameters for this proposal")
        model = self._new_model(train_z, train_y, train_s)
        model.eval()
        return model

    def _propose_group(
        self,
        observations: list[TaskObservations],
        *,
        q: int,
        seeds: list[int],
        keys: list[str] | None,
    ) -> list[Tensor]:
        opts = self.options
        device = observations[0].z.device
        train_z = torch.stack([o.z.to(device, COMPUTE_DTYPE) for o in observations])
        train_y = torch.stack([o.y.to(device, COMPUTE_DTYPE) for o in observations])
        train_s = torch.stack([o.s.to(device, COMPUTE_DTYPE) for o in observations])
        start = time.perf_counter()
        saved = [self._hyper.get(k) for k in keys] if (opts.warm_start and keys) else []
        warm = sum(h is not None for h in saved)
        # every task warm: a few iterations suffice; any cold task needs the full fit
        maxiter = opts.warm_fit_maxiter if warm and warm == len(saved) else opts.fit_maxiter
        model = None
        if warm and opts.warm_fresh_start:
            try:
                model, fresh_wins = fit_two_starts(
                    kernel=opts.kernel,
                    train_z=train_z,
                    train_y=train_y,
                    train_s=train_s,
                    warm=saved,
                    maxiter=maxiter,
                    jitter=opts.jitter,
                    learn_z_lengthscale=opts.learn_z_lengthscale,
                )
                logger.debug("second start beat the warm start for %d tasks", int(fresh_wins.sum()))
            except OptimizerError as exc:
                logger.warning("two-start fit failed (%s); falling back to a warm fit", exc)
        if model is None:
            model = self._new_model(train_z, train_y, train_s)
            if warm:
                load_task_hyperparameters(model, saved)
            try:
                fit_model(model, maxiter=maxiter)
            except OptimizerError as exc:
                if warm:
                    logger.warning("warm-started fit failed (%s); refitting from scratch", exc)
                model = self._cold_fit_or_prior(train_z, train_y, train_s, failed=not warm)
        if keys is not None:
            for t, key in enumerate(keys):
                self._hyper[key] = task_hyperparameters(model, t)
        fitted = time.perf_counter()
        if isinstance(model.covar_module.base_kernel, InstructionCoupledKernel):
            acq_model: Model = CoupledPosteriorModel(model)
        else:
            acq_model = model
        acq = make_acquisition(
            model=acq_model,
            kind=opts.acquisition,
            train_z=train_z,
            train_y=train_y,
            seeds=seeds,
            mc_samples=opts.mc_samples,
        )
        best, values = optimize_acquisition(
            acq, train_z=train_z, train_y=train_y, q=q, seeds=seeds, options=opts
        )
        logger.debug(
            "proposed q=%d for %d tasks (n=%d, warm=%d) in %.2f s (fit %.2f s): log-acq %s",
            q,
            len(observations),
            train_z.shape[1],
            warm,
            time.perf_counter() - start,
            fitted - start,
            values.tolist(),
        )
        out = []
        for t, obs in enumerate(observations):
            points = deduplicate(
                best[t],
                evaluated=train_z[t],
                tol=opts.dedup_tol,
                lower=opts.lower,
                upper=opts.upper,
                seed=seeds[t],
            )
            out.append(points.to(obs.z.dtype))
        return out

    def state_dict(self) -> dict:
        """Picklable warm-start state: ``{"version", "hyperparameters": {key: {name: tensor}}}``."""
        return {
            "version": STATE_VERSION,
            "hyperparameters": {
                k: {n: t.clone() for n, t in v.items()} for k, v in self._hyper.items()
            },
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the warm-start state written by :meth:`state_dict`."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise OptimizerError(
                f"BatchProposer state must be a dict with version {STATE_VERSION}; got "
                f"{type(state).__name__} with version "
                f"{state.get('version') if isinstance(state, dict) else None}"
            )
        hyper = state.get("hyperparameters")
        if not isinstance(hyper, dict) or not all(
            isinstance(v, dict) and all(isinstance(t, Tensor) for t in v.values())
            for v in hyper.values()
        ):
            raise OptimizerError("state['hyperparameters'] must map task keys to {name: tensor}")
        self._hyper = {str(k): {n: t.clone() for n, t in v.items()} for k, v in hyper.items()}
