"""The InstructZero paper's own search: analytic EI on the coupled GP, maximised by CMA-ES.

What the original code does each round (github Lichang-Chen/InstructZero at 911f019,
``run_instructzero.py`` lines 275-330 and ``instruction_coupled_kernel.py`` lines 49-66):

1. rebuild the GP with the instruction-coupled kernel on all observations and fit its
   hyper-parameters from their initial values (no warm start);
2. analytic (single-point) expected improvement with ``best_f`` the best standardised score;
3. one CMA-ES run from each of the ``q`` best evaluated soft prompts (sigma0 0.8, population 50,
   at most 10 generations, bounds ``[-1, 1]``), minimising ``-EI``;
4. each run's best point is a candidate of the next round (ordered by EI, best first).

Here the GP is :func:`izero.bo.models.build_model` (izero's coupled kernel, standardised
outcomes) and EI is BoTorch's ``ExpectedImprovement`` through the coupled kernel's fast
posterior (:class:`izero.bo.posterior.CoupledPosteriorModel`), divided by ``std(y)`` so that
it is the paper's EI of standardised scores. The CMA-ES runs are the ``cma`` package's
``CMAEvolutionStrategy``, advanced in lockstep so that each generation's populations of all
runs are scored in one posterior call; each run draws its samples from its own seeded
generator, so its path does not depend on the others. Pure torch/numpy: no Ray, no HTTP.

What to expect: with this kernel the soft-prompt lengthscales sit at 1/3 (their MAP, in the
original code too), so the posterior variance, and EI, vanish a short way from the evaluated
points; in d = 10 EI underflows to 0 in float64 on nearly all of the box. CMA-ES with the
paper's sigma0 = 0.8 then samples only where EI is 0, stops on flat fitness after two
generations and returns points about 1.4 (box units) from any evaluated point: the paper's
rounds are in effect wide random perturbations of its best points. ``benchmarks/
paper_search.py`` measures this against a dense search; a step size near the EI peak's width
(``sigma0`` about 0.05) makes CMA-ES find EI's maximum.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from botorch.acquisition.analytic import ExpectedImprovement, LogExpectedImprovement
from botorch.exceptions.warnings import NumericsWarning
from botorch.models import SingleTaskGP
from gpytorch.utils.warnings import NumericalWarning
from torch import Tensor

from izero.bo.models import build_model, fit_model
from izero.bo.posterior import CoupledPosteriorModel
from izero.errors import ConfigError, OptimizerError

logger = logging.getLogger(__name__)

KERNEL = "instruction_coupled"
"""The paper's GP kernel (``izero.bo.kernels.InstructionCoupledKernel``)."""
MIN_OBSERVATIONS = 2
"""Fewest observations a GP is fitted on."""
COMPUTE_DTYPE = torch.float64
"""GP fitting and EI run in double precision."""
WORST = -1e300
"""Objective value given to CMA-ES for a point whose value is NaN or infinite."""
SILENT_CMA = {"verbose": -9, "verb_disp": 0, "verb_log": 0}
"""``cma`` settings that keep it from printing, warning and writing ``outcmaes/`` files."""

PAPER_SIGMA0 = 0.8
PAPER_POPSIZE = 50
PAPER_MAX_GENERATIONS = 10
"""CMA-ES settings of the original code (``instruction_coupled_kernel.py`` lines 52-64)."""
ACQUISITIONS = ("ei", "logei")
"""What CMA-ES maximises: the paper's EI, or its logarithm (same ranking where EI > 0)."""
DEFAULT_FIT_MAXITER = 150
"""L-BFGS-B iterations of the GP fit (the original used BoTorch's default, no cap)."""


@dataclass(frozen=True)
class PaperSearchOptions:
    """Settings of :func:`propose_paper`; the defaults are the original code's.

    Attributes:
        sigma0: initial CMA-ES step size, in box units (the box ``[-1, 1]`` is 2 wide).
        popsize: CMA-ES population per generation.
        max_generations: most generations of each CMA-ES run (a run also ends earlier when
            ``cma``'s own stopping rules fire, e.g. a flat EI landscape, as in the original).
        num_starts: CMA-ES runs per round, started from the best evaluated soft prompts (None:
            ``q``, one per proposed point). With fewer observations than runs, the starts cycle
            through the observations (each run with its own seed). Must be at least ``q``: the
            ``q`` winners with the highest EI are proposed.
        lower, upper: the box ``[lower, upper]^d`` of soft prompts (CMA-ES bounds).
        fit_maxiter: L-BFGS-B iterations of the GP hyper-parameter fit.
        acquisition: ``"ei"``, the paper's expected improvement, or ``"logei"``, its logarithm.
            CMA-ES only ranks values, so the two search alike wherever EI is above 0 in
            float64; where EI underflows to 0 (far from the data, most of the box in d = 10
            with this kernel) ``"ei"`` is flat and ``cma`` stops on flat fitness, as the
            original did, while ``"logei"`` still orders the points.
    """

    _SECTION: ClassVar[str] = ""

    sigma0: float = PAPER_SIGMA0
    popsize: int = PAPER_POPSIZE
    max_generations: int = PAPER_MAX_GENERATIONS
    num_starts: int | None = None
    lower: float = -1.0
    upper: float = 1.0
    fit_maxiter: int = DEFAULT_FIT_MAXITER
    acquisition: str = "ei"

    def __post_init__(self) -> None:
        def fail(name: str, allowed: str) -> None:
            field = f"{self._SECTION}{name}"
            raise ConfigError(field, getattr(self, name), allowed, f"set {field} to {allowed}")

        def number(value: object) -> bool:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return ok and math.isfinite(value)

        for name, low in (("popsize", 2), ("max_generations", 1), ("fit_maxiter", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                fail(name, f"an integer >= {low}")
        starts = self.num_starts
        if starts is not None and (
            not isinstance(starts, int) or isinstance(starts, bool) or starts < 1
        ):
            fail("num_starts", "null (one run per proposed point) or an integer >= 1")
        for name in ("lower", "upper"):
            if not number(getattr(self, name)):
                fail(name, "a finite number")
        if not self.lower < self.upper:
            fail("upper", f"a number > lower ({self.lower})")
        if self.acquisition not in ACQUISITIONS:
            fail("acquisition", f"one of {', '.join(ACQUISITIONS)}")
        if not number(self.sigma0) or self.sigma0 <= 0:
            fail("sigma0", "a number > 0 (box units; the paper: 0.8)")


@dataclass(frozen=True)
class PaperSearchResult:
    """What one round of the paper's search found.

    Attributes:
        points: ``q x d`` proposed soft prompts, highest EI first.
        values: ``q`` their objective values (EI of standardised scores, or its log).
        starts: ``q`` indices into the observations of the point each winner's run started at.
    """

    points: Tensor
    values: Tensor
    starts: Tensor


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block (small GP work is 100x slower on two threads
    of a 2-core machine), restoring the previous setting after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_observations(z: Tensor, y: Tensor, s: Tensor, *, options: PaperSearchOptions) -> None:
    """Raise :class:`OptimizerError` unless ``z: n x d``, ``y: n``, ``s: n x m`` are finite,
    ``n >= 2`` and ``z`` lies in the box."""
    if z.dim() != 2 or y.shape != z.shape[:1] or s.dim() != 2 or s.shape[0] != z.shape[0]:
        raise OptimizerError(
            "propose_paper expects z: n x d, y: n, s: n x m; got "
            f"{tuple(z.shape)}, {tuple(y.shape)}, {tuple(s.shape)}"
        )
    if z.shape[0] < MIN_OBSERVATIONS:
        raise OptimizerError(
            f"propose_paper needs >= {MIN_OBSERVATIONS} observations for a GP, got "
            f"{z.shape[0]}; evaluate an initial design first"
        )
    for name, value in (("z", z), ("y", y), ("s", s)):
        if not torch.isfinite(value).all():
            raise OptimizerError(f"{name} holds NaN/inf: leave failed evaluations out")
    if ((z < options.lower) | (z > options.upper)).any():
        raise OptimizerError(
            f"z has values outside the box [{options.lower}, {options.upper}]; pass the soft "
            "prompts that were evaluated, or change the options' bounds"
        )


def fit_gp(z: Tensor, y: Tensor, s: Tensor, *, fit_maxiter: int) -> SingleTaskGP:
    """A fresh coupled-kernel GP on ``z: n x d``, ``y: n``, ``s: n x m``, fitted (MAP).

    If the fit fails, the GP keeps its initial (prior-mode) hyper-parameters and a warning is
    logged: the round still gets model-based proposals.
    """
    model = build_model(kernel=KERNEL, train_z=z, train_y=y, train_s=s)
    try:
        fit_model(model, maxiter=fit_maxiter)
    except OptimizerError as exc:
        logger.warning("%s; keeping the initial hyper-parameters for this round", exc)
        model = build_model(kernel=KERNEL, train_z=z, train_y=y, train_s=s)
        model.eval()
    return model


def expected_improvement(
    model: SingleTaskGP, y: Tensor, *, acquisition: str = "ei"
) -> Callable[[Tensor], Tensor]:
    """Analytic EI of a fitted coupled-kernel GP on the standardised scale, as the paper's.

    ``best_f`` is the best observed score. The GP standardises its outcomes, BoTorch's EI is on
    the raw scale, and dividing by the standardisation's ``std(y)`` gives the original's EI of
    standardised scores (same maximisers, same values up to its ``+1e-9`` on ``std``).

    Args:
        acquisition: ``"ei"`` (the paper's) or ``"logei"`` (its logarithm, BoTorch's LogEI).
    Returns:
        A function mapping ``b x 1 x d`` to ``b`` values (no gradients).
    """
    if acquisition not in ACQUISITIONS:
        raise OptimizerError(f"acquisition must be one of {ACQUISITIONS}, got {acquisition!r}")
    posterior = CoupledPosteriorModel(model)
    best_f = float(y.max())
    std = model.outcome_transform.stdvs.reshape(()).detach()
    if acquisition == "logei":
        log_ei = LogExpectedImprovement(posterior, best_f=best_f)

        def objective(x: Tensor) -> Tensor:
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", NumericalWarning)
                return log_ei(x) - std.log()

        return objective
    with warnings.catch_warnings():
        # BoTorch advises LogEI for gradient-based optimisers; the paper's CMA-ES uses EI.
        warnings.simplefilter("ignore", NumericsWarning)
        ei = ExpectedImprovement(posterior, best_f=best_f)

    def objective(x: Tensor) -> Tensor:
        # the coupled kernel's variances near evaluated points are ~0: GPyTorch would warn
        # (NumericalWarning) each time it rounds a negative one up
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", NumericalWarning)
            return ei(x) / std

    return objective


def start_indices(y: Tensor, count: int) -> Tensor:
    """``count`` observation indices, best ``y`` first, cycling when ``count > n``.

    Ties keep the evaluation order (a stable sort), so the starts are reproducible.
    """
    order = torch.sort(-y, stable=True).indices
    return order[torch.arange(count) % order.numel()]


def run_seeds(seed: int, count: int) -> list[int]:
    """One independent 63-bit seed per CMA-ES run, derived from ``seed``."""
    states = np.random.SeedSequence(int(seed) & (2**63 - 1)).spawn(count)
    return [int(s.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1)) for s in states]


def _sampler(seed: int) -> Callable[..., np.ndarray]:
    """``randn(lam, N)`` for ``cma`` from a private generator (never numpy's global state)."""
    rng = np.random.default_rng(seed)

    def randn(*shape: int) -> np.ndarray:
        return rng.standard_normal(shape)

    return randn


def cma_es_maximize(
    objective: Callable[[Tensor], Tensor],
    starts: Tensor,
    *,
    seeds: list[int],
    options: PaperSearchOptions,
) -> tuple[Tensor, Tensor]:
    """Maximise ``objective`` with one CMA-ES run from each row of ``starts``.

    The runs advance in lockstep: each generation, the populations of all runs still going are
    scored in one call. Each run is the original's ``cma_es_concat``: ``x0`` the start,
    ``sigma0``, ``popsize``, bounds ``[lower, upper]``, minimising ``-objective``, stopped by
    ``cma``'s rules or after ``max_generations`` generations; it returns its best point.

    Args:
        objective: maps ``b x 1 x d`` (float64) to ``b`` values to maximise.
        starts: ``k x d`` initial means, inside the box.
        seeds: ``k`` seeds, one per run.
    Returns:
        ``k x d`` best points (one per run, inside the box) and their ``k`` objective values.
    """
    import cma  # 2 s to import and it installs warning filters: only when a search runs

    k = starts.shape[0]
    if len(seeds) != k:
        raise OptimizerError(f"need one seed per CMA-ES run: got {len(seeds)} for {k} starts")
    dtype = COMPUTE_DTYPE
    bounds = [options.lower, options.upper]
    runs = [
        cma.CMAEvolutionStrategy(
            starts[i].detach().cpu().double().numpy(),
            options.sigma0,
            {
                "bounds": bounds,
                "popsize": options.popsize,
                "seed": math.nan,  # do not touch numpy's global random state
                "randn": _sampler(seeds[i]),
                **SILENT_CMA,
            },
        )
        for i in range(k)
    ]
    while True:
        active = [es for es in runs if not es.stop() and es.countiter < options.max_generations]
        if not active:
            break
        asked = [es.ask() for es in active]
        flat = torch.as_tensor(np.array([x for xs in asked for x in xs]), dtype=dtype)
        with torch.no_grad():
            values = objective(flat.unsqueeze(-2)).reshape(-1).double()
        # cma cannot rank NaN: a point whose value is undefined ranks last
        values = torch.nan_to_num(values, nan=WORST, posinf=WORST, neginf=WORST)
        neg = (-values).cpu().numpy()
        offset = 0
        for es, xs in zip(active, asked, strict=True):
            es.tell(xs, neg[offset : offset + len(xs)].tolist())
            offset += len(xs)
    best = np.array([es.best.x for es in runs])
    best_values = torch.tensor([-float(es.best.f) for es in runs], dtype=dtype)
    points = torch.as_tensor(best, dtype=dtype).clamp(options.lower, options.upper)
    return points.to(starts.device), best_values


def paper_search(
    z: Tensor,
    y: Tensor,
    s: Tensor,
    *,
    q: int,
    seed: int,
    options: PaperSearchOptions | None = None,
) -> PaperSearchResult:
    """One round of the paper's search (see the module docstring), with its EI values.

    Runs torch on one thread while it works (the previous setting is restored after).

    Args:
        z: ``n x d`` evaluated soft prompts (in the box), ``n >= 2``.
        y: ``n`` their dev scores (higher is better).
        s: ``n x m`` their per-example score vectors.
        q: soft prompts to propose.
        seed: seeds the CMA-ES runs (derive it from the run's seed and round); the same inputs
            and seed give the same points.
        options: CMA-ES and fit settings (None: the paper's).
    """
    opts = options if options is not None else PaperSearchOptions()
    if not isinstance(q, int) or isinstance(q, bool) or q < 1:
        raise OptimizerError(f"q must be an integer >= 1, got {q!r}")
    num_starts = q if opts.num_starts is None else opts.num_starts
    if num_starts < q:
        raise OptimizerError(
            f"num_starts ({num_starts}) is below q ({q}): each CMA-ES run gives one point; "
            "raise num_starts or leave it null"
        )
    z = z.detach().to(dtype=COMPUTE_DTYPE, device="cpu")
    y = y.detach().to(dtype=COMPUTE_DTYPE, device="cpu")
    s = s.detach().to(dtype=COMPUTE_DTYPE, device="cpu")
    check_observations(z, y, s, options=opts)
    with one_thread():
        model = fit_gp(z, y, s, fit_maxiter=opts.fit_maxiter)
        objective = expected_improvement(model, y, acquisition=opts.acquisition)
        starts = start_indices(y, num_starts)
        points, values = cma_es_maximize(
            objective, z[starts], seeds=run_seeds(seed, num_starts), options=opts
        )
    order = torch.sort(-values, stable=True).indices[:q]
    logger.debug(
        "paper search: n=%d, %d CMA-ES runs, best EI %.3g, q-th EI %.3g",
        z.shape[0],
        num_starts,
        float(values[order[0]]),
        float(values[order[-1]]),
    )
    return PaperSearchResult(points=points[order], values=values[order], starts=starts[order])


def propose_paper(
    z: Tensor,
    y: Tensor,
    s: Tensor,
    *,
    q: int,
    seed: int,
    options: PaperSearchOptions | None = None,
) -> Tensor:
    """``q x d`` soft prompts (float64, in the box, highest EI first) from the paper's search.

    See :func:`paper_search` for the arguments. Raises :class:`OptimizerError` on bad inputs.
    """
    return paper_search(z, y, s, q=q, seed=seed, options=options).points
