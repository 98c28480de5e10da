"""The driver's parts: proposal batching on Ray, run state, resume checks, progress."""

from __future__ import annotations

import asyncio

import pytest
import torch

from izero.driver.backends import as_cache_hit
from izero.driver.plan import RunKey, plan_runs
from izero.driver.progress import Progress
from izero.driver.proposals import ProposalBatcher
from izero.driver.state import Evaluation, RunState, mean_or_none
from izero.driver.sweep import _check_same_sweep
from izero.errors import ConfigError


def _observations(seed: int, n: int = 6, d: int = 3, m: int = 4):
    g = torch.Generator().manual_seed(seed)
    z = torch.rand(n, d, generator=g, dtype=torch.float64) * 2 - 1
    s = (torch.rand(n, m, generator=g, dtype=torch.float64) > 0.5).double()
    return z, s.mean(-1), s


@pytest.mark.parametrize("isolate", [True, False])
def test_runs_that_ask_together_get_their_proposals_from_ray_tasks(ray_local, isolate):
    # isolated runs (the default) get a Ray task each (their fits use several CPUs at once);
    # batched fits share one
    from izero.bo import ProposerOptions

    batcher = ProposalBatcher(options=ProposerOptions(isolate_tasks=isolate), window_s=0.2)
    together = [1, 1, 1] if isolate else [3]

    async def ask(warm=None):
        return await asyncio.gather(
            *(
                batcher.propose(
                    key=f"task{i}",
                    z=z,
                    y=y,
                    s=s,
                    q=2,
                    seed=i,
                    warm_start=None if warm is None else warm[i],
                )
                for i, (z, y, s) in enumerate(_observations(i) for i in range(3))
            )
        )

    proposals = asyncio.run(ask())
    assert batcher.batches == together
    for p, warm in proposals:
        assert p.shape == (2, 3) and bool(((p >= -1) & (p <= 1)).all())
        assert warm is not None and warm["values"]
    # Each run's warm start is JSON (its checkpoint), and feeding it back warm-starts the fit.
    import json

    warm = [json.loads(json.dumps(w)) for _, w in proposals]
    again = asyncio.run(ask(warm))
    assert batcher.batches == together * 2
    assert all(p.shape == (2, 3) for p, _ in again)


def test_run_state_best_observations_and_failed_examples():
    state = RunState()
    state.evaluations += [
        Evaluation(0, 0, "a", (0.1, 0.2), (1.0, None, 0.0), 0.5),
        Evaluation(1, 0, "b", (0.3, 0.4), (None, None, None), None),  # every call failed
        Evaluation(2, 0, "c", (0.5, 0.6), (1.0, 1.0, 0.0), 2 / 3),
        Evaluation(3, 1, "c", (0.7, 0.8), (1.0, 1.0, 0.0), 2 / 3, duplicate_of=2),
    ]
    assert state.best().eval_index == 2
    assert state.first_with("c").eval_index == 2
    assert state.first_with("b") is None  # a failed instruction is scored again, not reused
    z, y, s = state.observations()
    assert z.shape == (3, 2) and y.tolist() == [0.5, 2 / 3, 2 / 3]
    assert s[0].tolist() == [1.0, 0.5, 0.0]  # the failed example takes the instruction's mean
    assert mean_or_none((None, None)) is None and mean_or_none((1.0, None, 0.0)) == 0.5
    # Candidates and the method's state survive the JSON checkpoint bit for bit.
    from izero.methods import Candidate

    state.rounds[1] = [
        Candidate.soft_prompt([0.1 + 1e-17, -0.3333333333333333]),
        Candidate.instruction("Add the numbers."),
        Candidate.sampled(temperature=0.7, sample_seed=3, demos=(("1 2", "3"),)),
    ]
    state.method_state = {"warm_start": {"values": {"a": [0.1]}}}
    data = state.checkpoint(rounds_done=1, finished=False)
    import json

    back = RunState.from_checkpoint(json.loads(json.dumps(data)))
    assert back.rounds == state.rounds and back.method_state == state.method_state
    # izero 0.1 checkpoints (soft prompts and a warm start) still resume.
    legacy = RunState.from_checkpoint(
        {"proposals": {"0": [[0.5, -0.5]]}, "warm_start": {"values": {}}, "rounds_done": 1}
    )
    assert legacy.rounds == {0: [Candidate.soft_prompt([0.5, -0.5])]}
    assert legacy.method_state == {"warm_start": {"values": {}}}


def test_resume_refuses_a_config_that_changes_results():
    old = {
        "tasks": ["sum"],
        "seeds": [0],
        "methods": ["random"],
        "budget": {"q": 4},
        "data_dir": None,
        "optimizer": {},
        "generator": {"model": "tiny:llama"},
    }
    _check_same_sweep(old, {**old, "output": {"path": "elsewhere"}})
    with pytest.raises(ConfigError, match="budget"):
        _check_same_sweep(old, {**old, "budget": {"q": 8}})
    with pytest.raises(ConfigError, match=r"generator\.model"):
        _check_same_sweep(old, {**old, "generator": {"model": "tiny:gpt2"}})


def test_joined_scoring_result_is_free():
    from izero.blackbox.client import CallRecord
    from izero.blackbox.scoring import ScoreResult

    ok = CallRecord(0.0, 1.0, "200", 1, 10, 2, False, True, 0.01, (0.5,), ("200",))
    failed = CallRecord(0.0, 1.0, "503", 3, 0, 0, False, False, 0.0, (0.1, 0.4, 0.9), ("503",) * 3)
    res = ScoreResult(
        "i", (1.0, None), 1.0, ("x", None), 1, 1, 10, 2, 0.01, 1, 0, 1.0, (ok, failed)
    )
    joined = as_cache_hit(res)
    assert (joined.calls, joined.cost, joined.prompt_tokens, joined.cache_hits) == (0, 0.0, 0, 1)
    assert joined.scores == res.scores
    assert joined.call_records[0].cached and joined.call_records[0].attempt_times == ()
    assert joined.call_records[1] == failed


def test_plan_and_progress_line():
    runs = plan_runs(("sum", "diff"), ("instructzero", "random"), (0, 1))
    assert len(runs) == 8 and runs[0] == RunKey("sum", "instructzero", 0)
    assert RunKey("sum", "sampling", 3).id == "sum__sampling__3"
    progress = Progress(total_runs=8, expected_evaluations=100)
    assert "ETA ?" in progress.line()
    progress.evaluations = 50
    progress.best = {"sum/random": 0.5}
    assert "evals 50/100" in progress.line() and "ETA ?" not in progress.line()
    assert progress.best_line() == "best dev: sum/random 0.50"
