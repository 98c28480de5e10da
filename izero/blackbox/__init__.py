"""Scoring instructions on a black-box LLM: rate-limited, retried, cached, accounted calls.

Public surface (imported lazily, so ``import izero.blackbox`` stays cheap):

- :class:`EndpointConfig`: one OpenAI-compatible endpoint, its limits, prices and budget.
- :class:`ScoringPool`: Ray worker processes sharing one limiter, budget and cache;
  ``await pool.score(instruction, examples, metric) -> ScoreResult``.
  ``await pool.complete(prompts, params) -> CompletionResult`` samples free completions (an
  LLM proposing instructions) through the same limiter, budget and cache.
- :class:`EndpointScorer`: the same inside one process (no Ray).
- :class:`SimulatedServer` / :class:`SimulatedOptions`: the offline endpoint on 127.0.0.1.
- :class:`HFBlackBoxOptions` / :class:`HFScorer`: a local Hugging Face model as black box.
- :class:`QueryTemplate`: the query text around an instruction and an example input.
- :class:`VLLMServerOptions` / :class:`VLLMServer` / :class:`VLLMServerHandle`: a vLLM
  OpenAI-compatible server izero starts, owns and stops (in a Ray actor with ``num_gpus``).
- errors in :mod:`izero.blackbox.errors` (all :class:`izero.errors.BlackBoxError`).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CallRecord": "client",
    "CompletionResult": "completion",
    "SamplingParams": "completion",
    "EndpointConfig": "config",
    "AuthenticationError": "errors",
    "BadRequestError": "errors",
    "BudgetExhaustedError": "errors",
    "ContextLengthError": "errors",
    "EndpointError": "errors",
    "InsufficientQuotaError": "errors",
    "NotFoundError": "errors",
    "PermissionDeniedError": "errors",
    "ServerStartError": "errors",
    "HFBlackBoxOptions": "hf_backend",
    "HFScorer": "hf_backend",
    "EndpointScorer": "pool",
    "PoolUsage": "pool",
    "ScoringPool": "pool",
    "build_messages": "prompts",
    "build_query": "prompts",
    "QueryTemplate": "prompts",
    "ScoreResult": "scoring",
    "SimulatedOptions": "simulated",
    "SimulatedServer": "simulated",
    "VLLMServer": "vllm_server",
    "VLLMServerHandle": "vllm_server",
    "VLLMServerOptions": "vllm_server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"izero.blackbox.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'izero.blackbox' has no attribute {name!r}")
