"""The methods that need no LLM proposer: instructzero, random, sampling, manual."""

from __future__ import annotations

import asyncio
import json

import pytest

from izero.config import config_from_dict
from izero.errors import ConfigError
from izero.methods import Candidate, Evaluation, History, method_class
from tests.methods.conftest import InlineServices, make_run


def _score(history: list[Evaluation], rnd: int, candidates: list[Candidate]) -> None:
    """Score soft prompts with a smooth function of z (first coordinate high is good)."""
    for c in candidates:
        value = (c.z[0] + 1) / 2 if c.z is not None else 0.5
        scores = (round(value, 1), round(value, 1), 1.0 if value > 0.5 else 0.0)
        history.append(
            Evaluation(len(history), rnd, f"i{len(history)}", c.z, scores, sum(scores) / 3)
        )


async def _run(method, history, rounds=10):
    out = []
    for rnd in range(rounds):
        cands = await method.propose(History(history), rnd)
        if cands is None:
            break
        out.append(cands)
        _score(history, rnd, cands)
    return out


def test_random_and_instructzero_share_the_sobol_start_and_keep_the_budget(services):
    run = make_run("random", budget=(4, 2, 3))
    rand = method_class("random")(run, None, services)
    rounds = asyncio.run(_run(rand, []))
    assert [len(r) for r in rounds] == [4, 3, 3]
    iz = method_class("instructzero")(make_run("instructzero"), None, services)
    iz_rounds = asyncio.run(_run(iz, []))
    assert [len(r) for r in iz_rounds] == [4, 3, 3]
    assert iz_rounds[0] == rounds[0]  # the same initial design
    assert iz_rounds[1] != rounds[1]  # then the GP, not the Sobol sequence
    assert all(-1 <= v <= 1 for r in iz_rounds for c in r for v in c.z)
    # rounds after the first fit warm-start from the previous one
    assert [c["warm"] for c in services.bo_calls] == [False, True]


def test_instructzero_state_round_trips_and_resumes_identically(services):
    run = make_run("instructzero", budget=(5, 3, 2))
    history: list[Evaluation] = []
    first = method_class("instructzero")(run, None, services)
    asyncio.run(_run(first, history, rounds=2))
    saved = json.loads(json.dumps(first.state_dict()))
    assert saved["warm_start"]["values"]
    # an uninterrupted method and one restored from its checkpoint propose the same points
    a = asyncio.run(first.propose(History(history), 2))
    restored = method_class("instructzero")(run, None, InlineServices())
    restored.load_state_dict(saved)
    b = asyncio.run(restored.propose(History(history), 2))
    assert a == b


def test_instructzero_explores_when_nothing_was_answered(services, caplog):
    run = make_run("instructzero", budget=(3, 1, 2))
    method = method_class("instructzero")(run, None, services)
    first = asyncio.run(method.propose(History([]), 0))
    failed = [Evaluation(i, 0, f"i{i}", c.z, (None,), None) for i, c in enumerate(first)]
    second = asyncio.run(method.propose(History(failed), 1))
    assert len(second) == 2 and not services.bo_calls
    assert "too few answered evaluations" in caplog.text
    # the Sobol continuation, like random's second round
    rand = method_class("random")(make_run("random", budget=(3, 1, 2)), None, services)
    assert second == asyncio.run(rand.propose(History([]), 1))


def test_sampling_one_round_of_seeded_samples_over_rotated_demos(services):
    cfg = config_from_dict(
        {"methods": ["sampling"], "method_options": {"sampling": {"temperature": 0.7}}}
    )
    run = make_run("sampling", budget=(2, 1, 2))
    method = method_class("sampling")(run, cfg.method_options_for("sampling"), services)
    assert method.expected_evaluations() == 4
    cands = asyncio.run(method.propose(History([]), 0))
    assert [c.kind for c in cands] == ["sampled"] * 4
    assert {c.temperature for c in cands} == {0.7}
    assert len({c.sample_seed for c in cands}) == 4
    assert cands[0].demos == run.demos and cands[1].demos == run.demos[1:] + run.demos[:1]
    assert asyncio.run(method.propose(History([]), 1)) is None


def test_manual_scores_each_distinct_annotation_once(services):
    run = make_run("manual")
    method = method_class("manual")(run, None, services)
    cands = asyncio.run(method.propose(History([]), 0))
    texts = [c.text for c in cands]
    assert texts and len(texts) == len(set(texts)) == method.expected_evaluations()
    assert set(texts) <= set(run.annotations)
    assert asyncio.run(method.propose(History([]), 1)) is None


def test_method_options_are_validated_before_any_work():
    with pytest.raises(ConfigError, match=r"method_options\.sampling\.temperatur"):
        config_from_dict(
            {"methods": ["sampling"], "method_options": {"sampling": {"temperatur": 1}}}
        )
    with pytest.raises(ConfigError, match=r"method_options\.manual.*has no options"):
        config_from_dict({"methods": ["manual"], "method_options": {"manual": {"x": 1}}})
    with pytest.raises(ConfigError, match=r"method_options\.random.*a method of this sweep"):
        config_from_dict({"methods": ["manual"], "method_options": {"random": {}}})
    with pytest.raises(ConfigError, match=r"'methods'.*'instructzeros'.*did you mean"):
        config_from_dict({"methods": ["instructzeros"]})


def test_candidate_is_exactly_one_kind_and_round_trips_json():
    with pytest.raises(ValueError, match="exactly one"):
        Candidate(z=(0.1,), text="x")
    with pytest.raises(ValueError, match="exactly one"):
        Candidate()
    for c in (
        Candidate.soft_prompt([0.1, -1 / 3]),
        Candidate.instruction("Add them."),
        Candidate.sampled(temperature=1.0, sample_seed=7, demos=(("a", "b"),)),
    ):
        assert Candidate.from_json(json.loads(json.dumps(c.to_json()))) == c


def test_a_method_that_needs_features_refuses_an_engine_without_them():
    with pytest.raises(ConfigError, match=r"'generator\.engine'.*features.*instinct"):
        config_from_dict({"methods": ["instinct"], "generator": {"engine": "vllm"}})
    assert config_from_dict({"methods": ["instinct"]}).generator.engine == "hf"
