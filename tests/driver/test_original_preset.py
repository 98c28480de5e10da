"""A sweep under the ``instructzero-original`` preset, end to end on the simulated black box:
the original templates reach the server, every evaluation meets its own dev subset, and a
sweep stopped mid-round resumes with the same subsets (what was paid is a cache hit)."""

from __future__ import annotations

import pytest

from izero.blackbox import BudgetExhaustedError
from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.driver.backends import Backends
from izero.generator import clean_instruction
from izero.results import ResultsStore
from izero.tasks import dev_examples, load_task, make_splits

pytestmark = pytest.mark.slow

N_DEV = 5
CAP = 43


def _config(tmp_path, **blackbox):
    return config_from_dict(
        {
            "name": "original",
            "preset": "instructzero-original",
            "tasks": ["sum"],
            "seeds": [0],
            "methods": ["instructzero", "random"],
            "budget": {"preset": "smoke", "n_dev": N_DEV},
            "generator": {"model": "tiny:llama", "device": "cpu"},
            "blackbox": {"backend": "simulated", "rpm": 6000, "concurrency": 8, **blackbox},
            "output": {"path": str(tmp_path / "sweep")},
        }
    )


class _Spy:
    """Builds real Backends whose ``score`` notes what each instruction was scored on."""

    def __init__(self):
        self.scored: list[dict] = []

    def __call__(self, **kwargs):
        spy = self

        class SpyBackends(Backends):
            async def score(self, instruction, examples, metric, *, key, split):
                res = await super().score(instruction, examples, metric, key=key, split=split)
                spy.scored.append(
                    {
                        "method": key.method,
                        "split": split,
                        "instruction": instruction,
                        "inputs": tuple(e.input for e in examples),
                        "template": self.query_templates[split].template,
                        "calls": res.calls,
                        "cache_hits": res.cache_hits,
                    }
                )
                return res

        return SpyBackends(**kwargs)


def test_original_preset_sweep_draws_dev_per_evaluation_and_resumes_alike(ray_local, tmp_path):
    capped = _config(tmp_path, max_calls=CAP)
    assert capped.generator.max_new_tokens == 128 and capped.data.dev_sampling == "per_evaluation"
    first = _Spy()
    with pytest.raises(BudgetExhaustedError):
        run_sweep(capped, backends_factory=first)
    second = _Spy()
    outcome = run_sweep(_config(tmp_path), resume=True, backends_factory=second)

    store = ResultsStore(outcome.uri)
    rows = store.read_evaluations().to_pylist()
    summaries = store.read_summaries().to_pylist()
    budget = capped.budget.n_evaluations
    assert store.is_finished() and len(summaries) == 2
    for method in ("instructzero", "random"):
        mine = [r for r in rows if r["method"] == method]
        assert sorted(r["eval_index"] for r in mine) == list(range(budget))
    assert all(s["n_test"] == capped.budget.n_test for s in summaries)

    # The decode goes to the black box raw, and the server reads the original templates:
    # some answers are right (each is with probability >= 0.15; a query it could not parse
    # would be answered "I am not sure.").
    assert any(clean_instruction(r["instruction"]) != r["instruction"] for r in rows)
    assert any(r["dev_score"] for r in rows)
    scored = first.scored + second.scored
    assert {(s["split"], s["template"]) for s in scored} == {
        ("dev", "Instruction: {instruction}\n\nInput: {input}\n Output:"),
        ("test", "Instruction: {instruction}\n\nInput: {input}\n\nOUTPUT:"),
    }

    # Every evaluation is scored on its own draw of N_DEV examples, from the dev pool, the
    # same draw as dev_examples(splits, eval_index) gives (before and after the resume).
    splits = make_splits(
        load_task("sum"), seed=0, n_demos=5, n_dev=N_DEV, n_test=10, dev_sampling="per_evaluation"
    )
    pool = {e.input for e in splits.dev_pool}
    first_index = {
        (r["method"], r["instruction"]): r["eval_index"] for r in rows if r["duplicate_of"] is None
    }
    dev_calls = [s for s in scored if s["split"] == "dev"]
    for s in dev_calls:
        index = first_index[(s["method"], s["instruction"])]
        assert s["inputs"] == tuple(e.input for e in dev_examples(splits, index))
        assert len(s["inputs"]) == N_DEV and set(s["inputs"]) <= pool
    draws = {frozenset(s["inputs"]) for s in dev_calls}
    assert len(draws) >= 0.8 * len(
        {first_index[(s["method"], s["instruction"])] for s in dev_calls}
    )

    # Stopped mid-instruction (the cap is no multiple of N_DEV): after the resume every
    # evaluation is scored on the same examples as before the stop, so what was paid before
    # comes from the cache. Instructions scored in full before the stop (but whose round was
    # not recorded) are scored again for free; those stopped half-way pay only the rest.
    done_before = {(s["method"], s["instruction"]): s for s in first.scored if s["split"] == "dev"}
    paid_before = sum(s["calls"] for s in first.scored)
    assert paid_before < CAP
    after = [s for s in second.scored if s["split"] == "dev"]
    assert all(s["calls"] + s["cache_hits"] == N_DEV for s in after)
    for s in after:
        if (s["method"], s["instruction"]) in done_before:
            assert s["inputs"] == done_before[(s["method"], s["instruction"])]["inputs"]
            assert (s["calls"], s["cache_hits"]) == (0, N_DEV)
    half_way = sum(
        s["cache_hits"] for s in after if (s["method"], s["instruction"]) not in done_before
    )
    assert half_way >= CAP - paid_before

    # Runs of both methods meet the same examples at the same index: their shared Sobol round
    # (the same instructions) has the same score vectors.
    round0 = {
        m: [
            r["score_vector"]
            for r in sorted(rows, key=lambda r: r["eval_index"])
            if r["method"] == m and r["round"] == 0
        ]
        for m in ("instructzero", "random")
    }
    assert round0["instructzero"] == round0["random"]
