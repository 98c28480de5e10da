"""Scoring one instruction: zero-shot queries for the examples, the metric, the score vector.

A failed call scores ``None`` and is left out of the mean; it is never counted as wrong. A
metric that raises, or gives anything but a number in [0, 1], stops the run with a
:class:`~izero.tasks.metrics.MetricError` naming the metric and the example: never a silent 0.
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
from izero.tasks.metrics import MetricError
from izero.tasks.types import Example

Scorer = Callable[[str, Sequence[str], Any], float]
"""``scorer(prediction, accepted_answers, metric) -> score in [0, 1]``; ``metric`` is the
task's ``splits.metric`` (a name or a :class:`~izero.tasks.metrics.MetricSpec`)."""

#: Characters of an input or prediction shown in a metric error.
SHOWN_CHARS = 80


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


def apply_metric(
    scorer: Scorer, prediction: str, example: Example, metric: Any, *, index: int, total: int
) -> float:
    """``scorer(prediction, example.answers, metric)``, checked to be a number in [0, 1].

    Raises:
        MetricError: the scorer raised, or gave a non-number, NaN or a value outside [0, 1];
            one line naming the metric, the example (position, input, prediction) and the fix.
    """
    where = (
        f"example {index + 1} of {total} (input {example.input[:SHOWN_CHARS]!r}, prediction "
        f"{prediction[:SHOWN_CHARS]!r})"
    )
    try:
        raw = scorer(prediction, example.answers, metric)
    except MetricError as exc:
        raise MetricError(f"metric {str(metric)!r} on {where}: {exc}") from exc
    except Exception as exc:
        raise MetricError(
            f"metric {str(metric)!r} raised {type(exc).__name__}: {str(exc)[:200]} on {where}. "
            "Fix: make the metric return a score in [0, 1] for this prediction; the run "
            "stopped, and a resume pays nothing twice (answers are cached)"
        ) from exc
    try:
        value = float(raw) if not isinstance(raw, str) else math.nan
    except (TypeError, ValueError):
        value = math.nan
    if not (math.isfinite(value) and 0.0 <= value <= 1.0):
        raise MetricError(
            f"metric {str(metric)!r} returned {raw!r} on {where}; expected a number in [0, 1]. "
            "Fix: make the metric return a score in [0, 1]"
        )
    return value


def summarise(
    instruction: str,
    examples: Sequence[Example],
    outcomes: Sequence[CallOutcome],
    *,
    metric: Any,
    scorer: Scorer,
    latency_s: float,
    tag: Mapping[str, Any] | None = None,
) -> ScoreResult:
    """Apply the metric to each answered example and build the :class:`ScoreResult`.

    Raises:
        MetricError: the metric failed on an example (see :func:`apply_metric`).
    """
    scores: list[float | None] = []
    for i, (example, outcome) in enumerate(zip(examples, outcomes, strict=True)):
        if outcome.text is None:
            scores.append(None)
            continue
        scores.append(
            apply_metric(scorer, outcome.text, example, metric, index=i, total=len(examples))
        )
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
    metric: Any,
    *,
    scorer: Scorer | None = None,
    tag: Mapping[str, Any] | None = None,
    template: QueryTemplate | None = None,
) -> ScoreResult:
    """Score ``instruction`` on ``examples`` through ``backend`` (all calls concurrently).

    ``metric``: a metric name or a :class:`~izero.tasks.metrics.MetricSpec`; ``scorer``:
    ``None`` = ``izero.tasks.metrics.score_answer``; ``template``: the query template
    (``None`` = izero's, :mod:`izero.blackbox.prompts`). Raises the backend's
    :class:`~izero.errors.BlackBoxError` when the run must stop, and
    :class:`~izero.tasks.metrics.MetricError` when the metric fails.
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
