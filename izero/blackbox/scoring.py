"""Scoring one instruction: zero-shot queries for the examples, the metric, the score vector.

A failed call scores ``None`` and is left out of the mean; it is never counted as wrong.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from izero.blackbox.client import CallOutcome, CallRecord
from izero.blackbox.prompts import QueryTemplate, build_messages
from izero.tasks.types import Example

Scorer = Callable[[str, Sequence[str], str], float]
"""``scorer(prediction, accepted_answers, metric_name) -> score in [0, 1]``."""


def default_scorer() -> Scorer:
    """``izero.tasks.metrics.score_answer``, imported when first needed."""
    from izero.tasks.metrics import score_answer

    return score_answer


class ChatBackend(Protocol):
    """Anything that answers chat messages: the HTTP client or a local model backend."""

    async def complete(self, messages: Sequence[Mapping[str, str]]) -> CallOutcome: ...


@dataclass(frozen=True)
class ScoreResult:
    """Scores of one instruction on ``len(examples)`` examples (in the order given).

    ``scores[i]``/``answers[i]`` are ``None`` when example ``i``'s call finally failed;
    ``mean`` averages answered examples only (``None`` if none was answered). Tokens, cost and
    ``calls`` count paid calls only (cache hits are free); ``latency_s`` is wall time of the
    whole instruction; ``call_records`` has one :class:`CallRecord` per example.
    """

    instruction: str
    scores: tuple[float | None, ...]
    mean: float | None
    answers: tuple[str | None, ...]
    n_answered: int
    n_failed: int
    prompt_tokens: int
    completion_tokens: int
    cost: float
    calls: int
    cache_hits: int
    latency_s: float
    call_records: tuple[CallRecord, ...]
    tag: Mapping[str, Any] | None = None


def summarise(
    instruction: str,
    examples: Sequence[Example],
    outcomes: Sequence[CallOutcome],
    *,
    metric: str,
    scorer: Scorer,
    latency_s: float,
    tag: Mapping[str, Any] | None = None,
) -> ScoreResult:
    """Apply the metric to each answered example and build the :class:`ScoreResult`."""
    scores: list[float | None] = []
    for example, outcome in zip(examples, outcomes, strict=True):
        if outcome.text is None:
            scores.append(None)
            continue
        value = float(scorer(outcome.text, example.answers, metric))
        scores.append(value if math.isfinite(value) else 0.0)
    answered = [s for s in scores if s is not None]
    paid = [o.record for o in outcomes if o.record.ok and not o.record.cached]
    return ScoreResult(
        instruction=instruction,
        scores=tuple(scores),
        mean=(sum(answered) / len(answered)) if answered else None,
        answers=tuple(o.text for o in outcomes),
        n_answered=len(answered),
        n_failed=len(scores) - len(answered),
        prompt_tokens=sum(r.prompt_tokens for r in paid),
        completion_tokens=sum(r.completion_tokens for r in paid),
        cost=sum(r.cost for r in paid),
        calls=len(paid),
        cache_hits=sum(1 for o in outcomes if o.record.cached),
        latency_s=latency_s,
        call_records=tuple(o.record for o in outcomes),
        tag=dict(tag) if tag else None,
    )


async def score_instruction(
    backend: ChatBackend,
    instruction: str,
    examples: Sequence[Example],
    metric: str,
    *,
    scorer: Scorer | None = None,
    tag: Mapping[str, Any] | None = None,
    template: QueryTemplate | None = None,
) -> ScoreResult:
    """Score ``instruction`` on ``examples`` through ``backend`` (all calls concurrently).

    ``scorer``: ``None`` = ``izero.tasks.metrics.score_answer``; ``template``: the query
    template (``None`` = izero's, :mod:`izero.blackbox.prompts`). Raises the backend's
    :class:`~izero.errors.BlackBoxError` when the run must stop.
    """
    scorer = scorer or default_scorer()
    started = time.perf_counter()
    tasks = [
        asyncio.ensure_future(backend.complete(build_messages(instruction, ex.input, template)))
        for ex in examples
    ]
    try:
        # let calls already on their way finish (and be cached) even when another one stops
        # the run: what is paid for is never thrown away
        results = await asyncio.gather(*tasks, return_exceptions=True)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    for item in results:
        if isinstance(item, BaseException):
            raise item
    outcomes = list(results)
    return summarise(
        instruction,
        examples,
        outcomes,
        metric=metric,
        scorer=scorer,
        latency_s=time.perf_counter() - started,
        tag=tag,
    )
