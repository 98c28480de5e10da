"""Where a sweep's rows go: the results store, and what a resumed sweep finds there.

On start the recorder reads what the store already holds (evaluations, summaries and
checkpoints of a killed sweep), so the loop can skip finished runs and finished evaluations.
Writes run in a thread, off the event loop. Listeners (experiment tracking,
:class:`izero.tracking.RowListener`) see every row once it is written; they queue it and
return at once, and a failing listener never stops the sweep.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from izero.driver.plan import RunKey
from izero.driver.state import Evaluation, RunState
from izero.results import ResultsStore

logger = logging.getLogger(__name__)

#: Checkpoint names are prefixed so other checkpoints can live beside them.
CHECKPOINT_PREFIX = "run-"
#: ``purpose`` of calls-table rows: an instruction scored on an example, or an LLM proposing.
PURPOSE_SCORE = "score"
PURPOSE_PROPOSE = "propose"
_KEY = ("task", "method", "seed")


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc)


class Recorder:
    """Appends rows of a sweep to its :class:`ResultsStore` and answers resume queries.

    Args:
        store: the sweep's results store.
        sweep: the sweep's name.
        generator_model: generator model id, recorded on rows whose instruction it generated.
        blackbox_model: black-box model id, recorded on every row.
        listeners: told of every row written and of the rows a resumed sweep finds
            (``on_rows`` / ``on_existing``; e.g. :class:`izero.tracking.MlflowTracker`).
        proposer_model: model id of the LLM that proposes instructions (``ape``), recorded as
            the ``generator_model`` of the rows of ``proposer_methods``.
        proposer_methods: methods whose instructions the proposer LLM wrote.
    """

    def __init__(
        self,
        *,
        store: ResultsStore,
        sweep: str,
        generator_model: str,
        blackbox_model: str,
        listeners: Sequence[Any] = (),
        proposer_model: str | None = None,
        proposer_methods: frozenset[str] = frozenset(),
    ):
        self.store = store
        self.listeners = list(listeners)
        self.sweep = sweep
        self.generator_model = generator_model
        self.blackbox_model = blackbox_model
        self.proposer_model = proposer_model
        self.proposer_methods = frozenset(proposer_methods)
        # paid proposal calls per run: calls, prompt tokens, completion tokens, cost
        self._proposal_usage: dict[tuple[str, str, int], list[float]] = defaultdict(
            lambda: [0, 0, 0, 0.0]
        )
        self._rows: dict[tuple[str, str, int], dict[int, dict[str, Any]]] = defaultdict(dict)
        self._summaries: dict[tuple[str, str, int], dict[str, Any]] = {}
        self._checkpoints: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    def load_existing(self) -> int:
        """Read what a previous (killed) attempt of this sweep wrote; returns rows found."""
        table = self.store.read_evaluations()
        n = 0
        if table is not None and table.num_rows:
            for row in table.to_pylist():
                self._rows[(row["task"], row["method"], row["seed"])][row["eval_index"]] = row
                n += 1
        summaries = self.store.read_summaries()
        if summaries is not None:
            for row in summaries.to_pylist():
                self._summaries[(row["task"], row["method"], row["seed"])] = row
        self._load_proposal_usage()
        for name in self.store.list_checkpoints():
            if name.startswith(CHECKPOINT_PREFIX):
                self._checkpoints[name[len(CHECKPOINT_PREFIX) :]] = self.store.read_checkpoint(name)
        if n or self._summaries:
            rows = [r for run in self._rows.values() for r in run.values()]
            self._notify("on_existing", rows, list(self._summaries.values()))
        return n

    def _load_proposal_usage(self) -> None:
        """What earlier attempts paid for proposals (their ``propose`` rows of the calls table;
        results of izero <= 0.2 have none)."""
        import pyarrow.dataset as ds

        calls = self.store.read_calls(
            filter=(ds.field("purpose") == PURPOSE_PROPOSE) & ~ds.field("cached"),
            columns=[*_KEY, "status", "prompt_tokens", "completion_tokens", "cost_usd"],
        )
        for row in calls.to_pylist():
            if row["status"] == "ok":
                self._add_usage(
                    (row["task"], row["method"], row["seed"]),
                    row["prompt_tokens"],
                    row["completion_tokens"],
                    row["cost_usd"] or 0.0,
                )

    def _add_usage(self, run: tuple[str, str, int], prompt: int, completion: int, cost: float):
        usage = self._proposal_usage[run]
        usage[0] += 1
        usage[1] += prompt
        usage[2] += completion
        usage[3] += cost

    # -- resume queries -----------------------------------------------------------------------

    def summary(self, key: RunKey) -> dict[str, Any] | None:
        return self._summaries.get((key.task, key.method, key.seed))

    def checkpoint(self, key: RunKey) -> dict[str, Any] | None:
        return self._checkpoints.get(key.id)

    def evaluations(self, key: RunKey, indices: range) -> dict[int, dict[str, Any]]:
        rows = self._rows.get((key.task, key.method, key.seed), {})
        return {i: rows[i] for i in indices if i in rows}

    # -- rows -----------------------------------------------------------------------------------

    def _key_fields(self, key: RunKey) -> dict[str, Any]:
        return {"sweep": self.sweep, "task": key.task, "method": key.method, "seed": key.seed}

    def _model_of(self, key: RunKey, generated: bool) -> str | None:
        """Who wrote a row's instruction: the generator, the proposer LLM, or nobody (a ready
        text such as a human annotation)."""
        if generated:
            return self.generator_model
        return self.proposer_model if key.method in self.proposer_methods else None

    def evaluation_row(
        self,
        key: RunKey,
        ev: Evaluation,
        result: Any | None,
        gen_started: float,
        *,
        generated: bool,
    ) -> dict[str, Any]:
        """The evaluations-table row of ``ev``; ``result`` is None for a duplicate (no calls);
        ``generated``: the instruction came from the generator (not a ready text)."""
        now = time.time()
        return {
            **self._key_fields(key),
            "round": ev.round,
            "eval_index": ev.eval_index,
            "z": list(ev.z) if ev.z is not None else None,
            "instruction": ev.instruction,
            "dev_score": ev.dev_score,
            "score_vector": list(ev.scores),
            "n_answered": sum(v is not None for v in ev.scores),
            "n_failed": sum(v is None for v in ev.scores),
            "calls": result.calls if result else 0,
            "cache_hits": result.cache_hits if result else 0,
            "prompt_tokens": result.prompt_tokens if result else 0,
            "completion_tokens": result.completion_tokens if result else 0,
            "cost_usd": result.cost if result else 0.0,
            "latency_s": result.latency_s if result else 0.0,
            "gen_started_at": _utc(gen_started) if generated else None,
            "scored_at": _utc(now),
            "duplicate_of": ev.duplicate_of,
            "generator_model": self._model_of(key, generated),
            "blackbox_model": self.blackbox_model,
        }

    def call_rows(
        self, key: RunKey, result: Any, *, purpose: str = PURPOSE_SCORE
    ) -> list[dict[str, Any]]:
        """One calls-table row per call of a scoring (or, ``purpose="propose"``, completion)
        result."""
        return [
            {
                **self._key_fields(key),
                # The schema's started_at is when the first HTTP request went out (the call
                # may have waited for the rate limit before that); cached calls send none.
                "started_at": _utc(rec.attempt_times[0] if rec.attempt_times else rec.started_at),
                "finished_at": _utc(rec.finished_at),
                "status": "ok" if rec.ok and not rec.cached else rec.status,
                "attempts": rec.attempts,
                "prompt_tokens": rec.prompt_tokens,
                "completion_tokens": rec.completion_tokens,
                "cached": rec.cached,
                "purpose": purpose,
                "cost_usd": rec.cost if rec.ok and not rec.cached else 0.0,
            }
            for rec in result.call_records
        ]

    async def record_proposals(self, key: RunKey, result: Any) -> None:
        """Record the calls of a proposer LLM's completions (a ``CompletionResult``) as
        ``propose`` rows, and count what they paid in the run's totals."""
        for rec in result.call_records:
            if rec.ok and not rec.cached:
                run = (key.task, key.method, key.seed)
                self._add_usage(run, rec.prompt_tokens, rec.completion_tokens, rec.cost)
        await self.append([], self.call_rows(key, result, purpose=PURPOSE_PROPOSE))

    def summary_row(
        self,
        key: RunKey,
        state: RunState,
        *,
        best: Evaluation | None,
        test_score: float | None,
        test_vector: tuple[float | None, ...],
        test_usage: Any | None,
        wall_s: float,
        generated: bool,
    ) -> dict[str, Any]:
        """The summaries-table row of a finished run; ``generated``: its best instruction came
        from the generator."""
        rows = self._rows.get((key.task, key.method, key.seed), {})
        totals = {
            k: sum(r[k] for r in rows.values())
            for k in ("calls", "prompt_tokens", "completion_tokens", "cost_usd")
        }
        proposed = self._proposal_usage.get((key.task, key.method, key.seed))
        if proposed is not None:
            for name, value in zip(totals, proposed, strict=True):
                totals[name] += value
        if test_usage is not None:
            totals["calls"] += test_usage.calls
            totals["prompt_tokens"] += test_usage.prompt_tokens
            totals["completion_tokens"] += test_usage.completion_tokens
            totals["cost_usd"] += test_usage.cost
        return {
            **self._key_fields(key),
            "best_instruction": best.instruction if best else None,
            "best_eval_index": best.eval_index if best else None,
            "best_dev_score": best.dev_score if best else None,
            "test_score": test_score,
            "test_score_vector": list(test_vector),
            "n_test": len(test_vector),
            "n_evaluations": len(state.evaluations),
            "n_unique_instructions": len({ev.instruction for ev in state.evaluations}),
            "total_calls": totals["calls"],
            "total_prompt_tokens": totals["prompt_tokens"],
            "total_completion_tokens": totals["completion_tokens"],
            "total_cost_usd": totals["cost_usd"],
            "wall_s": wall_s,
            "finished_at": _utc(time.time()),
            "generator_model": self._model_of(key, generated),
            "blackbox_model": self.blackbox_model,
        }

    # -- writes ---------------------------------------------------------------------------------

    async def append(
        self,
        rows: list[dict[str, Any]],
        calls: list[dict[str, Any]],
        *,
        summaries: list[dict[str, Any]] | None = None,
    ) -> None:
        """Append rows (evaluations first, so a summary never precedes its evaluations)."""
        for row in rows:
            self._rows[(row["task"], row["method"], row["seed"])][row["eval_index"]] = row
        async with self._lock:
            if rows:
                await asyncio.to_thread(self.store.append_evaluations, rows)
            if calls:
                await asyncio.to_thread(self.store.append_calls, calls)
            if summaries:
                await asyncio.to_thread(self.store.append_summaries, summaries)
        for s in summaries or ():
            self._summaries[(s["task"], s["method"], s["seed"])] = s
        if rows or summaries:
            self._notify("on_rows", rows, list(summaries or ()))

    def _notify(self, method: str, rows: list[dict[str, Any]], summaries: list[dict[str, Any]]):
        """Hand written rows to the listeners; a listener that fails is dropped, not fatal."""
        for listener in list(self.listeners):
            try:
                getattr(listener, method)(rows, summaries)
            except Exception:
                logger.warning("dropping row listener %r: it failed", listener, exc_info=True)
                self.listeners.remove(listener)

    async def save_checkpoint(self, key: RunKey, data: dict[str, Any]) -> None:
        self._checkpoints[key.id] = data
        await asyncio.to_thread(self.store.write_checkpoint, CHECKPOINT_PREFIX + key.id, data)
