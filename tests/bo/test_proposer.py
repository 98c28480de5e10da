"""BatchProposer, baselines and validation: box, distinctness, reproducibility, warm starts."""

from __future__ import annotations

import pickle

import pytest
import torch

from izero.bo import (
    BatchProposer,
    ProposerOptions,
    SobolProposer,
    TaskObservations,
    UniformProposer,
    initial_design,
)
from izero.bo.dedup import deduplicate
from izero.errors import ConfigError, OptimizerError

from .conftest import make_observations

FAST = ProposerOptions(num_steps=10, raw_samples=8, fit_maxiter=30, warm_fit_maxiter=10)


def _assert_valid(points: torch.Tensor, obs: TaskObservations, q: int, tol: float) -> None:
    assert points.shape == (q, obs.d)
    assert torch.isfinite(points).all()
    assert points.min() >= -1.0 and points.max() <= 1.0
    pairwise = (points[:, None] - points[None]).abs().amax(-1)
    pairwise.fill_diagonal_(float("inf"))
    assert pairwise.min() > tol
    to_evaluated = (points[:, None] - obs.z[None]).abs().amax(-1)
    assert to_evaluated.min() > tol


@pytest.mark.parametrize("kernel", ["instruction_coupled", "matern"])
@pytest.mark.parametrize("acquisition", ["qlogei", "qlognei"])
def test_proposals_in_box_distinct_and_reproducible(small_tasks, kernel, acquisition):
    options = ProposerOptions(**{**FAST.__dict__, "kernel": kernel, "acquisition": acquisition})
    first = BatchProposer(options).propose(small_tasks, q=4, seeds=[0, 1, 2])
    again = BatchProposer(options).propose(small_tasks, q=4, seeds=[0, 1, 2])
    other = BatchProposer(options).propose(small_tasks, q=4, seeds=[5, 6, 7])
    assert len(first) == 3
    for points, obs in zip(first, small_tasks, strict=True):
        _assert_valid(points, obs, 4, options.dedup_tol)
        assert points.dtype == obs.z.dtype
    for a, b in zip(first, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(not torch.equal(a, b) for a, b in zip(first, other, strict=True))


def test_proposals_move_towards_the_best_observations():
    # y peaks at z = 0.5: proposals should be nearer that point than the average observation.
    z = initial_design(16, 2, seed=0)
    y = -((z - 0.5) ** 2).sum(-1)
    obs = TaskObservations(z=z, y=y, s=y.unsqueeze(-1))
    options = ProposerOptions(kernel="matern", num_steps=30, raw_samples=16)
    points = BatchProposer(options).propose([obs], q=2, seeds=[0])[0]
    dist = (points - 0.5).norm(dim=-1)
    assert dist.min() < (z - 0.5).norm(dim=-1).mean()


def test_warm_start_state_round_trips_and_pickles(small_tasks):
    proposer = BatchProposer(FAST)
    keys = ["a", "b", "c"]
    proposer.propose(small_tasks, q=2, seeds=[0, 1, 2], keys=keys)
    state = proposer.state_dict()
    assert set(state["hyperparameters"]) == set(keys)
    restored = BatchProposer(FAST)
    restored.load_state_dict(pickle.loads(pickle.dumps(state)))
    grown = [make_observations(o.n + 2, o.d, o.m, seed=i + 1) for i, o in enumerate(small_tasks)]
    out_a = proposer.propose(grown, q=3, seeds=[3, 4, 5], keys=keys)
    out_b = restored.propose(grown, q=3, seeds=[3, 4, 5], keys=keys)
    for a, b in zip(out_a, out_b, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(OptimizerError, match="version"):
        restored.load_state_dict({"version": 99})


def test_a_task_proposes_the_same_bits_whatever_it_is_batched_with():
    # A run's proposals may depend only on its own observations, seed and warm start: not on
    # which other runs reach their proposal step at the same moment (issue 15).
    runs = {k: make_observations(12, 4, 6, seed=i + 1) for i, k in enumerate("abcd")}
    runs["e"] = make_observations(9, 4, 6, seed=9)
    seeds = {k: 10 * i for i, k in enumerate(runs)}

    def propose(keys, proposer):
        out = proposer.propose(
            [runs[k] for k in keys], q=3, seeds=[seeds[k] for k in keys], keys=list(keys)
        )
        return dict(zip(keys, out, strict=True)), proposer.state_dict()["hyperparameters"]

    alone, hyper_alone = propose("a", BatchProposer(FAST))
    for batch in ("abcd", "dca", "ea"):
        together, hyper = propose(batch, BatchProposer(FAST))
        assert torch.equal(together["a"], alone["a"]), batch
        for name, value in hyper_alone["a"].items():
            assert torch.equal(hyper["a"][name], value), (batch, name)
    # warm-started from its own previous round, batched with a cold task and a warm one
    grown = {
        k: make_observations(o.n + 3, o.d, o.m, seed=o.n + i)
        for i, (k, o) in enumerate(runs.items())
    }
    runs.update(grown)
    warm_alone = BatchProposer(FAST)
    warm_alone.load_state_dict({"version": 1, "hyperparameters": hyper_alone})
    ref, _ = propose("a", warm_alone)
    mixed = BatchProposer(FAST)
    mixed.load_state_dict({"version": 1, "hyperparameters": {**hyper, "a": hyper_alone["a"]}})
    together, _ = propose("cab", mixed)
    assert torch.equal(together["a"], ref["a"])


def test_batched_fits_remain_available(small_tasks):
    options = ProposerOptions(**{**FAST.__dict__, "isolate_tasks": False})
    out = BatchProposer(options).propose(small_tasks, q=2, seeds=[0, 1, 2])
    for points, obs in zip(out, small_tasks, strict=True):
        _assert_valid(points, obs, 2, options.dedup_tol)
    with pytest.raises(ConfigError, match="isolate_tasks"):
        ProposerOptions(isolate_tasks="yes")


def test_observations_reject_nan_and_bad_shapes():
    z = torch.zeros(3, 2, dtype=torch.float64)
    y = torch.zeros(3, dtype=torch.float64)
    s = torch.zeros(3, 4, dtype=torch.float64)
    TaskObservations(z=z, y=y, s=s)
    bad_y = y.clone()
    bad_y[1] = float("nan")
    with pytest.raises(OptimizerError, match=r"y holds NaN/inf in rows \[1\]"):
        TaskObservations(z=z, y=bad_y, s=s)
    bad_s = s.clone()
    bad_s[2, 3] = float("inf")
    with pytest.raises(OptimizerError, match=r"s holds NaN/inf in rows \[2\]"):
        TaskObservations(z=z, y=y, s=bad_s)
    with pytest.raises(OptimizerError, match="shape"):
        TaskObservations(z=z, y=y[:2], s=s)
    with pytest.raises(OptimizerError, match=r"torch\.Tensor"):
        TaskObservations(z=z.tolist(), y=y, s=s)


def test_propose_validates_its_arguments(small_tasks):
    proposer = BatchProposer(FAST)
    with pytest.raises(OptimizerError, match="one seed per task"):
        proposer.propose(small_tasks, q=2, seeds=[0])
    with pytest.raises(OptimizerError, match="q must be"):
        proposer.propose(small_tasks, q=0, seeds=[0, 1, 2])
    one = make_observations(1, 4, 6, seed=0)
    with pytest.raises(OptimizerError, match="initial_design"):
        proposer.propose([one], q=2, seeds=[0])
    two = make_observations(2, 4, 6, seed=0)
    outside = TaskObservations(z=two.z * 0 + 2.0, y=two.y, s=two.s)
    with pytest.raises(OptimizerError, match="outside the box"):
        proposer.propose([outside, outside], q=1, seeds=[0, 1])


def test_options_are_validated():
    with pytest.raises(ConfigError, match="kernel"):
        ProposerOptions(kernel="rbf")
    with pytest.raises(ConfigError, match="acquisition"):
        ProposerOptions(acquisition="ei")
    with pytest.raises(ConfigError, match="raw_samples"):
        ProposerOptions(num_restarts=4, raw_samples=2)
    with pytest.raises(ConfigError, match="upper"):
        ProposerOptions(lower=1.0, upper=-1.0)


def test_deduplicate_replaces_repeats_and_evaluated_points():
    evaluated = torch.tensor([[0.0, 0.0], [0.5, 0.5]], dtype=torch.float64)
    proposals = torch.tensor([[0.0, 0.0], [0.2, 0.2], [0.2, 0.2 + 1e-6]], dtype=torch.float64)
    out = deduplicate(proposals, evaluated=evaluated, tol=1e-3, lower=-1, upper=1, seed=0)
    assert out.shape == (3, 2)
    torch.testing.assert_close(out[1], proposals[1])
    everything = torch.cat([evaluated, out])
    gaps = (everything[:, None] - everything[None]).abs().amax(-1)
    gaps.fill_diagonal_(float("inf"))
    assert gaps.min() > 1e-3
    assert out.abs().max() <= 1.0


def test_initial_design_is_sobol_in_the_box_and_reproducible():
    a = initial_design(25, 10, seed=3)
    assert a.shape == (25, 10) and a.min() >= -1 and a.max() <= 1
    torch.testing.assert_close(a, initial_design(25, 10, seed=3), rtol=0, atol=0)
    assert not torch.equal(a, initial_design(25, 10, seed=4))
    assert torch.unique(a, dim=0).shape[0] == 25


@pytest.mark.parametrize("cls", [SobolProposer, UniformProposer])
def test_baselines_share_the_interface(small_tasks, cls):
    proposer = cls()
    out = proposer.propose(small_tasks, q=5, seeds=[0, 1, 2], keys=["a", "b", "c"])
    for points, obs in zip(out, small_tasks, strict=True):
        _assert_valid(points, obs, 5, 1e-9)
    again = cls().propose(small_tasks, q=5, seeds=[0, 1, 2])
    for a, b in zip(out, again, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert proposer.state_dict() == {}


def test_sobol_proposer_extends_the_initial_design():
    design = initial_design(12, 3, seed=7)
    obs = TaskObservations(
        z=design[:8],
        y=torch.zeros(8, dtype=torch.float64),
        s=torch.zeros(8, 1, dtype=torch.float64),
    )
    out = SobolProposer().propose([obs], q=4, seeds=[7])[0]
    torch.testing.assert_close(out, design[8:], rtol=0, atol=0)


def test_a_fit_that_fails_everywhere_still_gives_proposals(monkeypatch):
    """A failed hyper-parameter fit (as BoTorch reports at times for n=250) must not stop a
    sweep: the proposer falls back to the prior-mode hyper-parameters."""
    import izero.bo.proposer as proposer_module
    from izero.bo import BatchProposer, TaskObservations
    from izero.errors import OptimizerError

    def failing_fit(model, *, maxiter, max_attempts=5):
        raise OptimizerError("GP hyper-parameter fit failed (simulated)")

    monkeypatch.setattr(proposer_module, "fit_model", failing_fit)
    g = torch.Generator().manual_seed(0)
    z = torch.rand(12, 3, generator=g, dtype=torch.float64) * 2 - 1
    s = (torch.rand(12, 5, generator=g, dtype=torch.float64) > 0.5).double()
    (points,) = BatchProposer().propose([TaskObservations(z=z, y=s.mean(-1), s=s)], q=4, seeds=[0])
    assert points.shape == (4, 3) and bool(((points >= -1) & (points <= 1)).all())
    assert torch.unique(points, dim=0).shape[0] == 4
