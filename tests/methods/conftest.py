"""A real, in-process MethodServices for method tests: no Ray, no HTTP, real BoTorch."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
import torch

from izero.methods import Budget, RunInfo
from izero.tasks import load_task, make_splits


class InlineServices:
    """What the driver lends a method, computed inline (the driver runs the same functions in
    Ray tasks). ``llm_complete`` and ``features`` are given by the tests that need them."""

    def __init__(self, *, llm=None, features=None):
        self.bo_calls: list[dict[str, Any]] = []
        self.cpu_calls = 0
        self._llm = llm
        self._features = features

    def sobol(self, n: int, d: int, *, seed: int) -> torch.Tensor:
        from izero.bo import initial_design

        return initial_design(n, d, seed=seed)

    async def bo_propose(self, *, z, y, s, q, seed, warm_start):
        from izero.bo import ProposerOptions
        from izero.driver.proposals import (
            _propose_in_worker,
            warm_start_from_json,
            warm_start_to_json,
        )

        self.bo_calls.append({"n": z.shape[0], "seed": seed, "warm": warm_start is not None})
        states = {}
        if warm_start:
            states = {
                "version": warm_start["version"],
                "hyperparameters": {"run": warm_start_from_json(warm_start)},
            }
        (points,), state = _propose_in_worker(
            ProposerOptions(), states, [z], [y], [s], ["run"], q, [seed]
        )
        return points, warm_start_to_json(state["version"], state["hyperparameters"]["run"])

    async def run_cpu(self, fn, /, *args):
        self.cpu_calls += 1
        return fn(*args)

    async def llm_complete(self, prompts: Sequence[str], *, temperature, max_tokens, seeds):
        assert self._llm is not None, "this test gives no LLM"
        return await self._llm(prompts, temperature=temperature, max_tokens=max_tokens, seeds=seeds)

    async def features(self, zs):
        assert self._features is not None, "this test gives no features"
        return await self._features(zs)


def make_run(method: str, *, task: str = "sum", seed: int = 0, budget=(4, 2, 3), d: int = 4):
    splits = make_splits(load_task(task), seed=seed, n_demos=3, n_dev=5, n_test=5)
    return RunInfo(
        task=task,
        method=method,
        seed=seed,
        splits=splits,
        budget=Budget(*budget),
        intrinsic_dim=d,
        annotations=load_task(task).annotations,
    )


@pytest.fixture
def services():
    return InlineServices()
