"""Scoring instructions on a black-box LLM: rate-limited, retried, cached, accounted calls.

Public surface:

- :class:`EndpointConfig`: one OpenAI-compatible endpoint, its limits, prices and budget.
- :class:`ScoringPool`: Ray worker processes sharing one limiter, budget and cache;
  ``await pool.score(instruction, examples, metric) -> ScoreResult``.
- :class:`EndpointScorer`: the same inside one process (no Ray).
- :class:`SimulatedServer` / :class:`SimulatedOptions`: the offline endpoint on 127.0.0.1.
- :class:`HFBlackBoxOptions` / :class:`HFScorer`: a local Hugging Face model as black box.
- errors: :mod:`izero.blackbox.errors` (all :class:`izero.errors.BlackBoxError`).
"""

from izero.blackbox.client import CallRecord
from izero.blackbox.config import EndpointConfig
from izero.blackbox.errors import (
    AuthenticationError,
    BadRequestError,
    BudgetExhaustedError,
    ContextLengthError,
    EndpointError,
    InsufficientQuotaError,
    NotFoundError,
    PermissionDeniedError,
)
from izero.blackbox.hf_backend import HFBlackBoxOptions, HFScorer
from izero.blackbox.pool import EndpointScorer, PoolUsage, ScoringPool
from izero.blackbox.prompts import build_messages, build_query
from izero.blackbox.scoring import ScoreResult
from izero.blackbox.simulated import SimulatedOptions, SimulatedServer

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "BudgetExhaustedError",
    "CallRecord",
    "ContextLengthError",
    "EndpointConfig",
    "EndpointError",
    "EndpointScorer",
    "HFBlackBoxOptions",
    "HFScorer",
    "InsufficientQuotaError",
    "NotFoundError",
    "PermissionDeniedError",
    "PoolUsage",
    "ScoreResult",
    "ScoringPool",
    "SimulatedOptions",
    "SimulatedServer",
    "build_messages",
    "build_query",
]
