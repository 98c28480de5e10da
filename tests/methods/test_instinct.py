"""``instinct``: INSTINCT's NeuralUCB over a Sobol domain, on features of a real tiny model.

The features come from a tiny random Llama's forward pass (the final hidden state of the last
token of [projected soft prompt, "\\n", demos, "The instruction was to"]); the driver's own
``features`` (the generator actors) computes the same kind of vector.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
import torch

from izero.config import SweepConfig, config_from_dict
from izero.errors import ConfigError, OptimizerError
from izero.generator.projection import ProjectionConfig, RandomProjection
from izero.hf.tiny import build_tiny
from izero.methods import METHOD_NAMES, Candidate, Evaluation, History, method_class
from izero.methods.instinct import InstinctOptions, compact_features
from tests.methods.conftest import InlineServices, make_run

D = 4
#: Small, fast settings (INSTINCT's defaults are 10,000 / 1,000 / 100 / 1000 steps).
FAST = {"domain_size": 96, "subset_size": 24, "hidden_width": 16, "training_steps": 40}


@pytest.fixture(scope="module")
def tiny_llama():
    model, tokenizer = build_tiny("tiny:llama")
    return model, tokenizer


class TinyFeatures:
    """``services.features`` computed with a tiny Llama, one forward pass per call."""

    def __init__(self, tiny_llama, demos, *, seed: int):
        self.model, tokenizer = tiny_llama
        self.calls = 0
        self.rows = 0
        self.projection = RandomProjection(
            ProjectionConfig(
                seed=seed,
                intrinsic_dim=D,
                n_prompt_tokens=2,
                hidden_size=self.model.config.hidden_size,
            )
        )
        text = "\n" + "\n\n".join(f"Input: {i}\nOutput: {o}" for i, o in demos)
        ids = tokenizer(text + "\n\nThe instruction was to")["input_ids"]
        with torch.inference_mode():
            self.prompt = self.model.get_input_embeddings()(torch.tensor([ids]))

    async def __call__(self, zs):
        self.calls += 1
        self.rows += len(zs)
        soft = self.projection.project(zs)
        inputs = torch.cat([soft, self.prompt.expand(len(zs), -1, -1)], dim=1)
        with torch.inference_mode():
            out = self.model.model(inputs_embeds=inputs).last_hidden_state
        return out[:, -1].to(torch.float32)


class RecordingServices(InlineServices):
    """InlineServices that keep the arguments of each ``run_cpu`` call."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.cpu_args: list[tuple] = []

    async def run_cpu(self, fn, /, *args):
        self.cpu_args.append(args)
        return await super().run_cpu(fn, *args)


def _instinct(tiny_llama, *, budget=(6, 3, 2), seed=0, options=None):
    run = make_run("instinct", seed=seed, budget=budget, d=D)
    features = TinyFeatures(tiny_llama, run.demos, seed=seed)
    services = RecordingServices(features=features)
    opts = InstinctOptions(**(options or FAST))
    return method_class("instinct")(run, opts, services), services, features


def _score(history: list[Evaluation], rnd: int, candidates, fail=()) -> None:
    """Dev scores, a smooth function of z; evaluations listed in ``fail`` get no answer."""
    for c in candidates:
        i = len(history)
        value = round((1 + c.z[0] * c.z[1] + 0.5 * c.z[2]) / 2.5, 2)
        if i in fail:
            history.append(Evaluation(i, rnd, f"i{i}", c.z, (None, None), None))
        else:
            history.append(Evaluation(i, rnd, f"i{i}", c.z, (value, value), value))


async def _rounds(method, history, rounds, fail=()):
    out = []
    for rnd in rounds:
        cands = await method.propose(History(history), rnd)
        if cands is None:
            out.append(None)
            break
        out.append(cands)
        _score(history, rnd, cands, fail)
    return out


def test_instinct_is_registered_and_accepted_by_a_sweep():
    assert "instinct" in METHOD_NAMES
    cfg = SweepConfig(methods=("instinct",))
    assert cfg.method_options_for("instinct") == InstinctOptions()
    assert InstinctOptions().domain_size == 10_000 and InstinctOptions().subset_size == 1_000


def test_instinct_runs_its_budget_on_a_fixed_domain(tiny_llama):
    method, services, features = _instinct(tiny_llama)
    history: list[Evaluation] = []
    rounds = asyncio.run(_rounds(method, history, range(5)))
    assert [len(r) for r in rounds[:-1]] == [6, 2, 2, 2] and rounds[-1] is None
    domain = {tuple(p) for p in services.sobol(FAST["domain_size"], D, seed=0).tolist()}
    zs = [c.z for r in rounds[:-1] for c in r]
    assert set(zs) <= domain
    assert len(set(zs[:6])) == 6  # distinct initial arms
    assert len(set(zs[6:8])) == 2 and len(set(zs[8:10])) == 2  # distinct picks within a round
    # features of the whole domain, computed once; one training + picking task per round
    assert features.calls == 1 and features.rows == FAST["domain_size"]
    assert services.cpu_calls == 3
    data = services.cpu_args[-1][0]
    assert data.features.shape[1] == tiny_llama[0].config.hidden_size
    assert data.subsets.shape == (2, FAST["subset_size"])
    # the state is JSON-safe: arms and, per pick, the factors that rebuild U
    state = json.loads(json.dumps(method.state_dict()))
    assert len(state["arms"]) == 12 and len(state["picks"]) == 6
    assert {len(p["c"]) for p in state["picks"]} == {FAST["hidden_width"]}
    assert [p["round"] for p in state["picks"]] == [1, 1, 2, 2, 3, 3]


def test_a_resumed_instinct_proposes_exactly_what_an_uninterrupted_one_would(tiny_llama):
    first, _, _ = _instinct(tiny_llama, seed=3)
    history: list[Evaluation] = []
    asyncio.run(_rounds(first, history, range(2)))
    saved = json.loads(json.dumps(first.state_dict()))
    uninterrupted = asyncio.run(_rounds(first, list(history), range(2, 4)))

    restored, _, features = _instinct(tiny_llama, seed=3)
    restored.load_state_dict(saved)
    resumed = asyncio.run(_rounds(restored, list(history), range(2, 4)))
    assert resumed == uninterrupted
    assert restored.state_dict() == first.state_dict()
    assert features.calls == 1  # recomputed, not checkpointed

    # resumed right after round 0, before the features were computed: the same round 1
    again, _, _ = _instinct(tiny_llama, seed=3)
    zero: list[Evaluation] = []
    asyncio.run(_rounds(again, zero, range(1)))  # its features task dies with this event loop
    late, _, _ = _instinct(tiny_llama, seed=3)
    late.load_state_dict(json.loads(json.dumps(again.state_dict())))
    expected = [Candidate.soft_prompt(ev.z) for ev in history[6:8]]
    assert asyncio.run(late.propose(History(zero), 1)) == expected
    assert asyncio.run(again.propose(History(zero), 1)) == expected


def test_seeds_give_different_domains_arms_and_picks(tiny_llama):
    a, _, _ = _instinct(tiny_llama, seed=0)
    b, _, _ = _instinct(tiny_llama, seed=1)
    ra = asyncio.run(_rounds(a, [], range(2)))
    rb = asyncio.run(_rounds(b, [], range(2)))
    assert ra[0] != rb[0] and ra[1] != rb[1]


def test_failed_evaluations_are_left_out_and_nothing_answered_gives_random_arms(tiny_llama, caplog):
    method, services, _ = _instinct(tiny_llama)
    history: list[Evaluation] = []
    asyncio.run(_rounds(method, history, range(2), fail={1, 4}))
    data = services.cpu_args[0][0]
    assert data.train_rows.numel() == 4  # 6 initial arms, two of them unanswered
    assert sorted(data.train_y.tolist()) == sorted(
        ev.dev_score for ev in history[:6] if ev.answered
    )

    nothing, services, _ = _instinct(tiny_llama, seed=5)
    failed: list[Evaluation] = []
    with caplog.at_level(logging.WARNING):
        asyncio.run(_rounds(nothing, failed, range(2), fail=set(range(6))))
    assert "no answered evaluation" in caplog.text
    assert services.cpu_calls == 0 and len(failed) == 8
    assert len({ev.z for ev in failed[6:]}) == 2


def test_instinct_options_are_validated_before_any_work(tiny_llama):
    for raw, field in (
        ({"subset_size": 0}, "subset_size"),
        ({"lam": 0}, "lam"),
        ({"nu": -1}, "nu"),
        ({"domain_size": 0}, "domain_size"),
        ({"lambda": 0.1}, "lambda"),
    ):
        with pytest.raises(ConfigError, match=rf"method_options\.instinct\.{field}"):
            config_from_dict({"methods": ["instinct"], "method_options": {"instinct": raw}})
    cfg = config_from_dict(
        {"methods": ["instinct"], "method_options": {"instinct": {"domain_size": 500, "nu": 0.5}}}
    )
    opts = cfg.method_options_for("instinct")
    assert opts == InstinctOptions(domain_size=500, nu=0.5)
    assert opts.subset == 500  # each pick from the whole (small) domain
    # against the budget: distinct initial arms, distinct picks in a round
    run = make_run("instinct", budget=(40, 2, 1), d=D)
    with pytest.raises(ConfigError, match=r"domain_size.*>= 40"):
        method_class("instinct")(run, InstinctOptions(domain_size=30, subset_size=10), None)
    run = make_run("instinct", budget=(4, 2, 8), d=D)
    with pytest.raises(ConfigError, match=r"subset_size.*>= 8"):
        method_class("instinct")(run, InstinctOptions(domain_size=30, subset_size=5), None)


def test_a_checkpoint_of_another_run_or_config_is_refused(tiny_llama):
    method, _, _ = _instinct(tiny_llama)
    history: list[Evaluation] = []
    asyncio.run(_rounds(method, history, range(1)))
    state = method.state_dict()
    other, _, _ = _instinct(tiny_llama, options={**FAST, "domain_size": 97})
    with pytest.raises(OptimizerError, match="domain_size"):
        other.load_state_dict(state)
    fresh, _, _ = _instinct(tiny_llama)
    with pytest.raises(OptimizerError, match="not the 0 soft prompts"):
        asyncio.run(fresh.propose(History(history), 1))


def test_features_are_kept_in_the_narrowest_exact_type():
    x = torch.randn(5, 8)
    assert compact_features(x).dtype == torch.float32
    assert torch.equal(compact_features(x), x)
    for half in (torch.bfloat16, torch.float16):
        from_half_model = x.to(half).to(torch.float32)
        kept = compact_features(from_half_model)
        assert kept.element_size() == 2
        assert torch.equal(kept.to(torch.float32), from_half_model)
