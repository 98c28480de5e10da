"""Unanswered work is not finished work: ask again for the examples that got no answer.

A call that failed after all its retries leaves its example unanswered (``None``: left out of
the instruction's mean, never counted wrong). Before the driver records an evaluation it asks
again for those examples only, a few times with a pause: the answered ones come back from the
response cache for nothing, and an endpoint outage holds the calls until it answers (see
:mod:`izero.blackbox.health`). Only an example the endpoint fails on every try while it answers
others is recorded as failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any

logger = logging.getLogger(__name__)

#: Pauses (seconds) before each new try of the unanswered examples of one instruction.
REASK_WAITS_S: tuple[float, ...] = (1.0, 5.0)


async def score_answered(
    score: Callable[[], Awaitable[Any]], *, waits: Sequence[float] = REASK_WAITS_S
) -> Any:
    """``await score()`` until every example is answered, at most ``1 + len(waits)`` times.

    ``score`` scores one instruction on its examples (a ``ScoreResult``); answers already paid
    for come from the response cache on the later tries. Returns the combined result: each
    example's answer and call record from the try that answered it, calls, tokens and cost
    counted once.
    """
    result = await score()
    for wait in waits:
        if not result.n_failed:
            break
        logger.info(
            "%d of %d examples of %r got no answer; asking again in %.0fs",
            result.n_failed,
            len(result.scores),
            result.instruction[:60],
            wait,
        )
        await asyncio.sleep(wait)
        result = merge_reask(result, await score())
    if result.n_failed:
        logger.warning(
            "%d of %d examples of %r got no answer on %d tries while the endpoint answered "
            "others; recorded as failed (left out of the mean, not counted wrong)",
            result.n_failed,
            len(result.scores),
            result.instruction[:60],
            1 + len(waits),
        )
    return result


def merge_reask(first: Any, again: Any) -> Any:
    """``first`` with its unanswered examples taken from ``again`` (the same instruction and
    examples scored later). Answered examples keep ``first``'s answer and record (``again``
    has them as cache hits); an example answered only now gets ``again``'s, with the failed
    attempts of ``first`` added to its record."""
    scores: list[float | None] = []
    answers: list[str | None] = []
    records = []
    for i, rec in enumerate(first.call_records):
        if first.answers[i] is not None:
            scores.append(first.scores[i])
            answers.append(first.answers[i])
            records.append(rec)
            continue
        later = again.call_records[i]
        scores.append(again.scores[i])
        answers.append(again.answers[i])
        records.append(
            replace(
                later,
                started_at=rec.started_at,
                attempts=rec.attempts + later.attempts,
                attempt_times=rec.attempt_times + later.attempt_times,
                attempt_statuses=rec.attempt_statuses + later.attempt_statuses,
            )
        )
    paid = [r for r in records if r.ok and not r.cached]
    answered = [s for s in scores if s is not None]
    return replace(
        first,
        scores=tuple(scores),
        mean=sum(answered) / len(answered) if answered else None,
        answers=tuple(answers),
        n_answered=len(answered),
        n_failed=len(scores) - len(answered),
        prompt_tokens=sum(r.prompt_tokens for r in paid),
        completion_tokens=sum(r.completion_tokens for r in paid),
        cost=sum(r.cost for r in paid),
        calls=len(paid),
        cache_hits=sum(1 for r in records if r.cached),
        latency_s=first.latency_s + again.latency_s,
        call_records=tuple(records),
    )
