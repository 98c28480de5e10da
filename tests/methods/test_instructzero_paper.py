"""``instructzero_paper`` over a few rounds, with a small in-test MethodServices: Sobol points
from izero.bo.initial_design and run_cpu calling the (pickled, as Ray would ship it) search
inline. The end-to-end sweep test lives with the driver."""

from __future__ import annotations

import asyncio
import logging
import pickle
from dataclasses import replace

import pytest
import torch

from izero.bo import initial_design
from izero.errors import ConfigError
from izero.methods import METHOD_NAMES, Budget, Evaluation, History, RunInfo, method_class
from izero.methods.instructzero_paper import InstructZeroPaper, InstructZeroPaperOptions
from izero.tasks import load_task, make_splits

DIM = 3
SCORE_LEN = 12


class InlineServices:
    """What the driver lends, minus Ray: the run's Sobol sequence and CPU work run inline."""

    def __init__(self) -> None:
        self.cpu_calls = 0

    def sobol(self, n: int, d: int, *, seed: int) -> torch.Tensor:
        return initial_design(n, d, seed=seed)

    async def run_cpu(self, fn, /, *args):
        self.cpu_calls += 1
        fn, args = pickle.loads(pickle.dumps((fn, args)))  # a Ray task receives it pickled
        return fn(*args)

    async def bo_propose(self, **kwargs):
        raise AssertionError("instructzero_paper must not use the batch q-EI proposer")

    async def llm_complete(self, prompts, **kwargs):
        raise AssertionError("instructzero_paper needs no LLM proposer")

    async def features(self, zs):
        raise AssertionError("instructzero_paper needs no generator features")


@pytest.fixture(scope="module")
def splits(data_dir):
    return make_splits(load_task("antonyms", data_dir=data_dir), seed=0)


def make_run(splits, *, seed: int = 0, budget: Budget | None = None) -> RunInfo:
    return RunInfo(
        task="antonyms",
        method="instructzero_paper",
        seed=seed,
        splits=splits,
        budget=budget or Budget(n_init=6, n_rounds=3, q=4),
        intrinsic_dim=DIM,
    )


def score(z: tuple[float, ...]) -> tuple[float, ...]:
    """Per-example 0/1 scores of the instruction a soft prompt would give: a smooth function
    of ``z`` thresholded at fixed levels (deterministic, like a temperature-0 black box)."""
    gen = torch.Generator().manual_seed(7)
    w = torch.randn(DIM, SCORE_LEN, generator=gen, dtype=torch.float64)
    level = torch.rand(SCORE_LEN, generator=gen, dtype=torch.float64)
    p = torch.sigmoid(torch.sin(2.0 * torch.tensor(z, dtype=torch.float64)) @ w)
    return tuple(float(v) for v in (level < p).double())


def evaluate(evals: list[Evaluation], round: int, z: tuple[float, ...], *, fail: bool = False):
    scores = (None,) * SCORE_LEN if fail else score(z)
    answered = [v for v in scores if v is not None]
    evals.append(
        Evaluation(
            eval_index=len(evals),
            round=round,
            instruction=f"instruction {len(evals)}",
            z=z,
            scores=scores,
            dev_score=sum(answered) / len(answered) if answered else None,
        )
    )


def run_all(method, *, fail_round: int | None = None):
    """Ask the method round after round until it is done; returns its rounds' points."""

    async def loop():
        evals: list[Evaluation] = []
        rounds = []
        r = 0
        while (candidates := await method.propose(History(evals), r)) is not None:
            assert all(c.kind == "soft_prompt" for c in candidates)
            rounds.append(torch.tensor([c.z for c in candidates], dtype=torch.float64))
            for c in candidates:
                evaluate(evals, r, c.z, fail=r == fail_round)
            r += 1
        return rounds, evals

    return asyncio.run(loop())


def test_registered_with_paper_defaults():
    assert "instructzero_paper" in METHOD_NAMES
    cls = method_class("instructzero_paper")
    assert cls is InstructZeroPaper and cls.soft_prompt
    opts = cls.options_class()
    assert (opts.sigma0, opts.popsize, opts.max_generations) == (0.8, 50, 10)
    assert (opts.num_starts, opts.lower, opts.upper, opts.acquisition) == (None, -1.0, 1.0, "ei")


def test_rounds_of_q_points_in_the_box_then_done(splits):
    run = make_run(splits)
    services = InlineServices()
    method = InstructZeroPaper(run, None, services)
    rounds, evals = run_all(method)
    assert [len(r) for r in rounds] == [6, 4, 4, 4]
    assert len(evals) == run.budget.n_evaluations
    assert torch.equal(rounds[0], initial_design(6, DIM, seed=run.seed))
    for points in rounds[1:]:
        assert points.shape == (4, DIM)
        assert (points >= -1).all() and (points <= 1).all()
    assert services.cpu_calls == 3
    # the GP rounds are the search's, not the Sobol sequence continued
    sobol = initial_design(18, DIM, seed=run.seed)
    assert not torch.allclose(rounds[1], sobol[6:10])
    assert method.state_dict() == {}


def test_same_seed_same_proposals_other_seed_other_proposals(splits):
    first, _ = run_all(InstructZeroPaper(make_run(splits, seed=3), None, InlineServices()))
    again, _ = run_all(InstructZeroPaper(make_run(splits, seed=3), None, InlineServices()))
    other, _ = run_all(InstructZeroPaper(make_run(splits, seed=4), None, InlineServices()))
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[1], other[1])


def test_no_answered_evaluations_continue_the_sobol_sequence(splits, caplog):
    run = make_run(splits, budget=Budget(n_init=6, n_rounds=1, q=4))
    services = InlineServices()
    with caplog.at_level(logging.WARNING, logger="izero.methods.instructzero_paper"):
        rounds, _ = run_all(InstructZeroPaper(run, None, services), fail_round=0)
    assert torch.equal(rounds[1], initial_design(10, DIM, seed=run.seed)[6:])
    assert services.cpu_calls == 0
    assert "too few answered evaluations" in caplog.text


def test_a_failed_search_falls_back_to_sobol_points(splits, caplog):
    """Soft prompts outside the box (e.g. recorded by hand) make the search refuse; the round
    still gets Sobol points instead of stopping the run."""
    run = make_run(splits, budget=Budget(n_init=3, n_rounds=1, q=2))
    method = InstructZeroPaper(run, None, InlineServices())
    evals: list[Evaluation] = []
    for z in [(1.5, 0.0, 0.0), (0.2, -0.3, 0.1), (0.9, 0.9, -0.9)]:
        evaluate(evals, 0, z)
    with caplog.at_level(logging.WARNING, logger="izero.methods.instructzero_paper"):
        candidates = asyncio.run(method.propose(History(evals), 1))
    got = torch.tensor([c.z for c in candidates], dtype=torch.float64)
    assert torch.equal(got, initial_design(5, DIM, seed=run.seed)[3:])
    assert "outside the box" in caplog.text


def test_more_starts_than_q(splits):
    run = make_run(splits, budget=Budget(n_init=5, n_rounds=1, q=3))
    opts = InstructZeroPaperOptions(num_starts=8, popsize=10, max_generations=3)
    rounds, _ = run_all(InstructZeroPaper(run, opts, InlineServices()))
    assert [len(r) for r in rounds] == [5, 3]


@pytest.mark.parametrize(
    ("field", "value"),
    [("sigma0", -0.1), ("popsize", 0), ("lower", -0.5), ("upper", 0.5), ("acquisition", "x")],
)
def test_bad_options_name_the_config_field(field, value):
    with pytest.raises(ConfigError, match=rf"'method_options\.instructzero_paper\.{field}'"):
        InstructZeroPaperOptions(**{field: value})


def test_fewer_starts_than_q_is_refused_before_any_work(splits):
    run = make_run(splits, budget=Budget(n_init=6, n_rounds=2, q=5))
    opts = replace(InstructZeroPaperOptions(), num_starts=4)
    services = InlineServices()
    with pytest.raises(ConfigError, match=r"num_starts'.*budget q \(5\)"):
        InstructZeroPaper(run, opts, services)
    assert services.cpu_calls == 0
