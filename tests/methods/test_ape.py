"""``ape``'s own parts: demo subsets from the training pool, requests, cleaning proposals."""

from __future__ import annotations

import pytest

from izero.blackbox.proposal_prompts import parse_forward_prompt
from izero.methods import Budget, RunInfo, method_class
from izero.methods.ape import Ape, ApeOptions, clean_proposal
from izero.tasks import load_task, make_splits


def _ape(task: str = "sum", seed: int = 0, data_dir=None, **options) -> Ape:
    splits = make_splits(load_task(task, data_dir=data_dir), seed=seed)
    run = RunInfo(
        task=task,
        method="ape",
        seed=seed,
        splits=splits,
        budget=Budget(n_init=4, n_rounds=2, q=4),
        intrinsic_dim=10,
    )
    return Ape(run, ApeOptions(**options), services=None)


def test_registered_and_needs_a_proposer_not_a_generator():
    assert method_class("ape") is Ape
    assert Ape.llm_proposer and not Ape.uses_generator and not Ape.soft_prompt


def test_subsets_come_from_the_training_pool_seeded_by_the_run():
    ape = _ape()
    splits = ape.run.splits
    subsets = ape.subsets()
    assert len(subsets) == 3 and all(len(s) == 5 for s in subsets)
    train = {e.input: set(e.answers) for e in splits.train}
    scored = {e.input for e in splits.dev + splits.test}
    for subset in subsets:
        assert len({i for i, _ in subset}) == 5
        for example_input, answer in subset:
            assert example_input in train and example_input not in scored
            assert answer in train[example_input]
    assert len({tuple(s) for s in subsets}) == 3  # three different draws
    assert _ape().subsets() == subsets  # deterministic per run
    assert _ape(seed=1).subsets() != subsets
    assert len(_ape(n_subsets=5, n_demos=2).subsets()[4]) == 2


def test_requests_spread_candidates_over_subsets_with_distinct_seeds():
    ape = _ape()
    prompts, seeds = ape.requests()
    assert len(prompts) == ape.run.budget.n_evaluations == 12 == ape.expected_evaluations()
    assert len(set(seeds)) == 12
    subsets = [list(s) for s in ape.subsets()]
    assert [parse_forward_prompt(p) for p in prompts] == [subsets[i % 3] for i in range(12)]
    prompts, seeds_40 = _ape(candidates=40).requests()
    assert len(prompts) == 40 and seeds_40[:12] == seeds  # more candidates reuse the first seeds
    assert set(_ape(seed=1).requests()[1]).isdisjoint(seeds)


def test_small_task_draws_what_its_pool_holds(data_dir, caplog):
    ape = _ape("auto_debugging", data_dir=data_dir, n_demos=8)  # 10 induce examples, 5 dev
    with caplog.at_level("WARNING", logger="izero.methods.ape"):
        subsets = ape.subsets()
    assert all(len(s) == 5 for s in subsets) and "only 5 training examples" in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Add the two numbers.", "Add the two numbers."),
        ('to "add the numbers".', "Add the numbers."),
        ('The instruction was to "return the sum".', "Return the sum."),
        ("to find the total\n\nInput: 1 2\nOutput: 3", "Find the total"),
        ("\n  \u201cSort the words\u201d ", "Sort the words"),
        ("Total the numbers", "Total the numbers"),  # "to" only as a word
        ("Input: 1 2", None),
        ("to", None),
        ("", None),
        (None, None),
    ],
)
def test_clean_proposal(text, expected):
    assert clean_proposal(text) == expected
