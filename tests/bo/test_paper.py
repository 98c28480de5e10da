"""The paper's search (izero.bo.paper): CMA-ES on analytic EI against a dense search,
determinism, bounds, and the finding about its step size on the coupled GP."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from botorch.acquisition.analytic import ExpectedImprovement, LogExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.generation.gen import gen_candidates_scipy
from botorch.models import SingleTaskGP
from gpytorch.mlls import ExactMarginalLogLikelihood

from izero.bo import initial_design
from izero.bo.paper import (
    PaperSearchOptions,
    cma_es_maximize,
    expected_improvement,
    fit_gp,
    one_thread,
    paper_search,
    propose_paper,
    run_seeds,
    start_indices,
)
from izero.bo.posterior import CoupledPosteriorModel
from izero.errors import ConfigError, OptimizerError
from tests.bo.conftest import make_observations

PAPER = PaperSearchOptions()
DENSE_POINTS = 20_000
REFINED = 20


def dense_max_log_ei(log_ei, z: torch.Tensor) -> float:
    """Max of ``log_ei`` over [-1, 1]^d by a dense search: 20k Sobol points, the evaluated
    points and small perturbations of them (EI's peaks of the coupled GP sit next to the data),
    the best 20 refined by L-BFGS-B."""
    n, d = z.shape
    gen = torch.Generator().manual_seed(0)
    near = z.repeat(20, 1) + 0.03 * torch.randn(20 * n, d, generator=gen, dtype=z.dtype)
    pool = torch.cat([initial_design(DENSE_POINTS, d, seed=12345), z, near.clamp(-1, 1)])
    with torch.no_grad():
        values = log_ei(pool.unsqueeze(-2))
    start = pool[values.topk(REFINED).indices].unsqueeze(-2)
    _, refined = gen_candidates_scipy(start, log_ei, lower_bounds=-1.0, upper_bounds=1.0)
    return max(float(refined.max()), float(values.max()))


def smooth_gp(d: int, seed: int, n: int = 25):
    """A BoTorch-default GP (fitted lengthscales) on a smooth function of ``n`` Sobol points."""
    gen = torch.Generator().manual_seed(seed)
    z = initial_design(n, d, seed=seed)
    w = torch.randn(d, generator=gen, dtype=torch.float64)
    y = torch.sin(2.0 * z) @ w / math.sqrt(d)
    gp = SingleTaskGP(z, y.unsqueeze(-1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    gp.eval()
    return gp, z, y


@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.InputDataWarning")
@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.NumericsWarning")
@pytest.mark.parametrize("d", [2, 5, 10])
def test_cma_es_with_paper_settings_reaches_dense_ei_maximum_on_a_fitted_gp(d):
    """The paper's CMA-ES (sigma0 0.8, population 50, 10 generations, one run from each of
    the 25 best points) finds EI's maximum about as well as 20k Sobol points + L-BFGS-B."""
    for seed in (1, 2):
        gp, z, y = smooth_gp(d, seed)
        best_f = float(y.max())
        ei = ExpectedImprovement(gp, best_f=best_f)
        log_ei = LogExpectedImprovement(gp, best_f=best_f)
        reference = dense_max_log_ei(log_ei, z)
        starts = z[start_indices(y, 25)]

        def objective(x, ei=ei):
            with torch.no_grad():
                return ei(x)

        points, values = cma_es_maximize(
            objective, starts, seeds=run_seeds(seed, 25), options=PAPER
        )
        with torch.no_grad():
            found = float(log_ei(points.unsqueeze(-2)).max())
        ratio = math.exp(found - reference)
        assert ratio >= 0.85, f"d={d} seed={seed}: CMA-ES reached {ratio:.3f} of the dense max"
        assert math.isclose(float(values.max()), math.exp(found), rel_tol=1e-6)


def coupled_case(d: int, seed: int, n: int = 25):
    obs = make_observations(n, d, 20, seed=seed)
    gp = fit_gp(obs.z, obs.y, obs.s, fit_maxiter=PAPER.fit_maxiter)
    log_ei = LogExpectedImprovement(CoupledPosteriorModel(gp), best_f=float(obs.y.max()))
    return obs, log_ei


@pytest.mark.filterwarnings("ignore::gpytorch.utils.warnings.NumericalWarning")
def test_paper_search_reaches_dense_ei_maximum_on_the_coupled_gp_in_d2():
    obs, log_ei = coupled_case(2, seed=1)
    reference = dense_max_log_ei(log_ei, obs.z)
    result = paper_search(obs.z, obs.y, obs.s, q=25, seed=7)
    with torch.no_grad():
        found = float(log_ei(result.points.unsqueeze(-2)).max())
    assert math.exp(found - reference) >= 0.95


@pytest.mark.filterwarnings("ignore::gpytorch.utils.warnings.NumericalWarning")
@pytest.mark.parametrize("d", [5, 10])
def test_cma_es_at_the_ei_peak_scale_reaches_dense_maximum_on_the_coupled_gp(d):
    """With the coupled kernel EI peaks within ~0.05 of the evaluated points; a step size of
    that order (and 30 generations) lets the same CMA-ES find the maximum."""
    obs, log_ei = coupled_case(d, seed=1)
    reference = dense_max_log_ei(log_ei, obs.z)
    scaled = PaperSearchOptions(sigma0=0.05, max_generations=30)
    result = paper_search(obs.z, obs.y, obs.s, q=25, seed=7, options=scaled)
    with torch.no_grad():
        found = float(log_ei(result.points.unsqueeze(-2)).max())
    assert math.exp(found - reference) >= 0.95


@pytest.mark.filterwarnings("ignore::gpytorch.utils.warnings.NumericalWarning")
def test_paper_settings_in_d10_only_see_zero_ei_on_the_coupled_gp():
    """The finding this method reproduces (the original code's GP fits the same soft-prompt
    lengthscales, 1/3): in d = 10 sigma0 = 0.8 samples only where EI underflows to 0, so the
    winners are far from every evaluated point and carry EI 0, while EI near the data is > 0."""
    obs, log_ei = coupled_case(10, seed=1)
    result = paper_search(obs.z, obs.y, obs.s, q=25, seed=7)
    assert (result.values == 0).all()
    assert torch.cdist(result.points, obs.z).min(-1).values.median() > 0.8
    assert math.exp(dense_max_log_ei(log_ei, obs.z)) > 1e-3
    logei = paper_search(
        obs.z, obs.y, obs.s, q=25, seed=7, options=PaperSearchOptions(acquisition="logei")
    )
    assert torch.isfinite(logei.values).all() and (logei.values > -1e300).all()


def test_same_inputs_and_seed_give_the_same_points_whatever_numpy_global_state():
    obs = make_observations(12, 4, 6, seed=3)
    opts = PaperSearchOptions(popsize=10, max_generations=4)
    np.random.seed(1)
    state = np.random.get_state()[1].copy()
    first = propose_paper(obs.z, obs.y, obs.s, q=5, seed=11, options=opts)
    assert np.array_equal(np.random.get_state()[1], state), "numpy's global state was touched"
    np.random.seed(99)
    torch.manual_seed(99)
    again = propose_paper(obs.z, obs.y, obs.s, q=5, seed=11, options=opts)
    other = propose_paper(obs.z, obs.y, obs.s, q=5, seed=12, options=opts)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == (5, 4) and first.dtype == torch.float64


def test_each_cma_es_run_is_independent_of_the_others():
    obs = make_observations(10, 3, 6, seed=2)
    gp = fit_gp(obs.z, obs.y, obs.s, fit_maxiter=50)
    objective = expected_improvement(gp, obs.y, acquisition="logei")
    opts = PaperSearchOptions(popsize=8, max_generations=5)
    seeds = run_seeds(5, 3)
    together, values = cma_es_maximize(objective, obs.z[:3], seeds=seeds, options=opts)
    alone, value = cma_es_maximize(objective, obs.z[1:2], seeds=seeds[1:2], options=opts)
    assert torch.equal(together[1], alone[0]) and values[1] == value[0]


@pytest.mark.parametrize(("lower", "upper", "sigma0"), [(-1.0, 1.0, 0.8), (-0.5, 0.25, 5.0)])
def test_points_stay_in_the_box(lower, upper, sigma0):
    obs = make_observations(15, 5, 8, seed=4)
    z = lower + (upper - lower) * (obs.z + 1) / 2
    opts = PaperSearchOptions(lower=lower, upper=upper, sigma0=sigma0, popsize=12)
    points = propose_paper(z, obs.y, obs.s, q=7, seed=0, options=opts)
    assert points.shape == (7, 5)
    assert (points >= lower).all() and (points <= upper).all()


def test_more_starts_than_q_returns_the_q_best_by_ei_and_starts_cycle():
    obs = make_observations(4, 3, 5, seed=5)
    opts = PaperSearchOptions(num_starts=9, popsize=8, max_generations=3, acquisition="logei")
    result = paper_search(obs.z, obs.y, obs.s, q=6, seed=2, options=opts)
    assert result.points.shape == (6, 3)
    assert torch.all(result.values[:-1] >= result.values[1:])
    order = torch.sort(-obs.y, stable=True).indices
    assert start_indices(obs.y, 9).tolist() == [order[i % 4].item() for i in range(9)]
    assert set(result.starts.tolist()) <= set(range(4))


def test_start_indices_break_ties_by_evaluation_order():
    y = torch.tensor([0.5, 0.9, 0.5, 0.9, 0.1], dtype=torch.float64)
    assert start_indices(y, 4).tolist() == [1, 3, 0, 2]


def test_one_thread_inside_and_restored_after():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with one_thread():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("sigma0", 0.0),
        ("sigma0", float("nan")),
        ("popsize", 1),
        ("max_generations", 0),
        ("num_starts", 0),
        ("fit_maxiter", 0),
        ("upper", -2.0),
        ("acquisition", "qlogei"),
        ("popsize", True),
    ],
)
def test_bad_options_are_refused_naming_the_field(field, value):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        PaperSearchOptions(**{field: value})


def test_bad_observations_and_q_are_refused():
    obs = make_observations(6, 2, 4, seed=1)
    with pytest.raises(OptimizerError, match="needs >= 2 observations"):
        propose_paper(obs.z[:1], obs.y[:1], obs.s[:1], q=2, seed=0)
    with pytest.raises(OptimizerError, match="NaN"):
        propose_paper(obs.z, obs.y * float("nan"), obs.s, q=2, seed=0)
    with pytest.raises(OptimizerError, match="outside the box"):
        propose_paper(obs.z * 2, obs.y, obs.s, q=2, seed=0)
    with pytest.raises(OptimizerError, match="below q"):
        propose_paper(obs.z, obs.y, obs.s, q=3, seed=0, options=PaperSearchOptions(num_starts=2))
    with pytest.raises(OptimizerError, match="z: n x d"):
        propose_paper(obs.z, obs.y[:3], obs.s, q=2, seed=0)


def test_duplicate_points_and_constant_scores_still_give_q_points():
    """Identical soft prompts evaluated twice (two runs can share a winner) and a task where
    every instruction scores the same are ordinary rounds, not errors."""
    obs = make_observations(10, 4, 8, seed=6)
    z, y, s = (torch.cat([t, t[:4]]) for t in (obs.z, obs.y, obs.s))
    opts = PaperSearchOptions(popsize=10, max_generations=3)
    assert propose_paper(z, y, s, q=6, seed=1, options=opts).shape == (6, 4)
    flat = propose_paper(obs.z, obs.y * 0, obs.s * 0, q=6, seed=1, options=opts)
    assert flat.shape == (6, 4) and torch.isfinite(flat).all()
