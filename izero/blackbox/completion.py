"""Free completions: prompts in, texts out, with per-call sampling parameters.

Scoring sends the black box fixed queries at the endpoint's temperature; an LLM that *proposes*
instructions (APE) is sampled: each call has its own ``temperature``, ``max_tokens`` and
``seed``. They go in the request body and in the response-cache key, so two samples of one
prompt are two paid requests, and a resumed run finds both in the cache. Calls go through the
same client as scoring calls (rate limit, retries, cache, accounting, budget caps); a call that
finally fails gives ``None``, never an empty text.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from izero.blackbox.client import CallOutcome, CallRecord
from izero.blackbox.scoring import ChatBackend


@dataclass(frozen=True)
class SamplingParams:
    """Sampling parameters of one completion call.

    ``temperature`` in [0, 2]; ``max_tokens`` >= 1 (completion length cap, tokens); ``seed``:
    the request's sampling seed (OpenAI's and vLLM's ``seed``); ``top_p`` in (0, 1] or
    ``None`` (not sent: the server's default).
    """

    temperature: float
    max_tokens: int
    seed: int
    top_p: float | None = None

    def __post_init__(self) -> None:
        def number(v: object) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def integer(v: object) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not (number(self.temperature) and 0 <= self.temperature <= 2):
            raise ValueError(
                f"SamplingParams.temperature must be in [0, 2], got {self.temperature!r}"
            )
        if not (integer(self.max_tokens) and self.max_tokens >= 1):
            raise ValueError(
                f"SamplingParams.max_tokens must be an integer >= 1, got {self.max_tokens!r}"
            )
        if not integer(self.seed):
            raise ValueError(f"SamplingParams.seed must be an integer, got {self.seed!r}")
        if self.top_p is not None and not (number(self.top_p) and 0 < self.top_p <= 1):
            raise ValueError(f"SamplingParams.top_p must be in (0, 1] or None, got {self.top_p!r}")

    def body(self) -> dict[str, Any]:
        """The request-body fields (also part of the cache key)."""
        out: dict[str, Any] = {
            "temperature": float(self.temperature),
            "max_tokens": int(self.max_tokens),
            "seed": int(self.seed),
        }
        if self.top_p is not None:
            out["top_p"] = float(self.top_p)
        return out


@dataclass(frozen=True)
class CompletionResult:
    """Completions of ``len(texts)`` prompts (in the order given).

    ``texts[i]`` is ``None`` when call ``i`` finally failed. Tokens, cost and ``calls`` count
    paid calls only (cache hits are free); ``n_failed``: calls that finally failed;
    ``latency_s``: wall time of the whole batch; ``call_records``: one per prompt. The field
    names match :class:`~izero.blackbox.scoring.ScoreResult`'s, so usage is counted alike.
    """

    texts: tuple[str | None, ...]
    prompt_tokens: int
    completion_tokens: int
    cost: float
    calls: int
    cache_hits: int
    n_failed: int
    latency_s: float
    call_records: tuple[CallRecord, ...]
    tag: Mapping[str, Any] | None = None


def summarise_completions(
    outcomes: Sequence[CallOutcome], *, latency_s: float, tag: Mapping[str, Any] | None = None
) -> CompletionResult:
    """The :class:`CompletionResult` of finished calls."""
    paid = [o.record for o in outcomes if o.record.ok and not o.record.cached]
    return CompletionResult(
        texts=tuple(o.text for o in outcomes),
        prompt_tokens=sum(r.prompt_tokens for r in paid),
        completion_tokens=sum(r.completion_tokens for r in paid),
        cost=math.fsum(r.cost for r in paid),
        calls=len(paid),
        cache_hits=sum(1 for o in outcomes if o.record.cached),
        n_failed=sum(1 for o in outcomes if o.text is None),
        latency_s=latency_s,
        call_records=tuple(o.record for o in outcomes),
        tag=dict(tag) if tag else None,
    )


def user_messages(prompt: str) -> list[dict[str, str]]:
    """One prompt as the chat messages sent: a single user message."""
    return [{"role": "user", "content": prompt}]


async def complete_prompts(
    backend: ChatBackend,
    prompts: Sequence[str],
    params: Sequence[SamplingParams],
    *,
    tag: Mapping[str, Any] | None = None,
) -> CompletionResult:
    """Complete every prompt (one user message each) through ``backend``, all concurrently.

    ``backend.complete`` must accept ``params=`` (:class:`~izero.blackbox.client.ChatClient`
    does). Raises the backend's :class:`~izero.errors.BlackBoxError` when the run must stop,
    after the calls already on their way have finished (and been cached).
    """
    if len(prompts) != len(params):
        raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling parameters")
    started = time.perf_counter()
    tasks = [
        asyncio.ensure_future(backend.complete(user_messages(p), params=sp.body()))  # type: ignore[call-arg]
        for p, sp in zip(prompts, params, strict=True)
    ]
    try:
        results = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for item in results:
        if isinstance(item, BaseException):
            raise item
    return summarise_completions(list(results), latency_s=time.perf_counter() - started, tag=tag)
