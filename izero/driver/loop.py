"""The pipelined optimisation loop: propose -> generate -> de-duplicate -> score -> update.

Every (task, method, seed) run is one coroutine on the driver's event loop. Runs never wait
for each other: while one run's instructions are being scored, another's are being generated
and a third's proposals are being computed in a Ray task. The loop knows no method: each run's
:class:`~izero.methods.Method` proposes candidates from the run's history, and everything
shared (generation, de-duplication, scoring, recording, checkpoints, resume) happens here.

Nothing paid for is lost: every evaluation is appended to the results as soon as it is
scored, every round's candidates are checkpointed (with the method's state) before they are
generated, and a resumed run replays its rounds from the checkpoint, taking finished
evaluations from the results and the rest from the response cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from izero.driver.plan import RunKey
from izero.driver.progress import Progress
from izero.driver.state import Evaluation, RunState, mean_or_none
from izero.methods.base import Candidate, Method
from izero.tasks import TaskSplits, dev_examples

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlannedRun:
    """One run of the sweep: its key, its task splits and its method."""

    key: RunKey
    splits: TaskSplits
    method: Method


@dataclass
class RunOutcome:
    """What a finished run reports: its best instruction and test score."""

    key: RunKey
    best_instruction: str | None
    best_dev_score: float | None
    test_score: float | None


class SweepLoop:
    """Runs every run of a sweep concurrently and records what they evaluate.

    Args:
        backends: the stages (generator, scoring); see ``Backends``.
        recorder: where rows, checkpoints and summaries go; see ``Recorder``.
        progress: progress counters, shown by the caller.
    """

    def __init__(self, *, backends: Any, recorder: Any, progress: Progress):
        self.backends = backends
        self.recorder = recorder
        self.progress = progress

    async def run_all(self, runs: Sequence[PlannedRun]) -> list[RunOutcome]:
        """Run every run to completion, concurrently; the first stopping error cancels the rest."""
        tasks = [asyncio.create_task(self.run_one(run), name=run.key.id) for run in runs]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def run_one(self, run: PlannedRun) -> RunOutcome:
        """One (task, method, seed) run: its rounds, then the test score of its best instruction."""
        key, splits, method = run.key, run.splits, run.method
        done = self.recorder.summary(key)
        if done is not None:
            self.progress.run_finished(key, done.get("best_dev_score"))
            return RunOutcome(
                key,
                done.get("best_instruction"),
                done.get("best_dev_score"),
                done.get("test_score"),
            )
        started = time.time()
        state = RunState.from_checkpoint(self.recorder.checkpoint(key))
        if state.method_state:
            method.load_state_dict(state.method_state)
        rnd = 0
        while True:
            candidates = state.rounds.get(rnd)
            if candidates is None:
                candidates = await method.propose(state.history(), rnd)
                if not candidates:
                    break
                state.rounds[rnd] = list(candidates)
                state.method_state = method.state_dict()
                await self._save(key, state, rounds_done=rnd)
            await self._evaluate_round(key, splits, state, rnd, candidates)
            rnd += 1
            await self._save(key, state, rounds_done=rnd)
        return await self._finish(key, splits, state, started, rounds_done=rnd)

    async def _save(
        self, key: RunKey, state: RunState, *, rounds_done: int, finished: bool = False
    ) -> None:
        """Checkpoint a run: its candidates so far and its method's state."""
        data = state.checkpoint(rounds_done=rounds_done, finished=finished)
        await self.recorder.save_checkpoint(key, data)

    # -- shared machinery ---------------------------------------------------------------------

    async def _evaluate_round(
        self,
        key: RunKey,
        splits: TaskSplits,
        state: RunState,
        rnd: int,
        candidates: Sequence[Candidate],
    ) -> None:
        """Generate (unless a candidate is a text), de-duplicate, score, record.

        Evaluations already in the results (a resumed run) are taken from there and neither
        generated nor scored again.
        """
        demos = tuple((ex.input, ex.output) for ex in splits.demos)
        requests = [
            self.backends.generation_request(c, demos=demos, seed=key.seed) for c in candidates
        ]
        zs = [c.z for c in candidates]
        base = len(state.evaluations)
        recorded = self.recorder.evaluations(key, range(base, base + len(requests)))
        missing = [i for i in range(len(requests)) if base + i not in recorded]
        instructions: dict[int, str] = {
            i: recorded[base + i]["instruction"]
            for i in range(len(requests))
            if base + i in recorded
        }
        to_generate = [i for i in missing if not isinstance(requests[i], str)]
        for i in missing:
            if isinstance(requests[i], str):
                instructions[i] = requests[i]
        gen_started = time.time()
        if to_generate:
            texts = await self.backends.generate([requests[i] for i in to_generate])
            instructions.update(zip(to_generate, texts, strict=True))
            self.progress.generated(len(texts))

        # Identical instructions are scored once per run (earlier rounds included), on the dev
        # examples of their first evaluation (the same for all of them, unless the splits draw
        # dev examples per evaluation).
        first: dict[str, int] = {}
        for i in range(len(requests)):
            first.setdefault(instructions[i], i)
        unique = [
            instr
            for instr, i in first.items()
            if base + i not in recorded and state.first_with(instr) is None
        ]
        results = await asyncio.gather(
            *(
                self.backends.score(
                    instr,
                    dev_examples(splits, base + first[instr]),
                    splits.metric,
                    key=key,
                    split="dev",
                )
                for instr in unique
            )
        )
        by_instruction = dict(zip(unique, results, strict=True))

        rows: list[dict[str, Any]] = []
        calls: list[dict[str, Any]] = []
        scored_now: dict[str, Evaluation] = {}
        for i in range(len(requests)):
            idx, instr = base + i, instructions[i]
            if idx in recorded:
                row = recorded[idx]
                ev = Evaluation(
                    idx,
                    rnd,
                    instr,
                    zs[i],
                    tuple(row["score_vector"] or ()),
                    row["dev_score"],
                    duplicate_of=row["duplicate_of"],
                )
            elif (src := state.first_with(instr) or scored_now.get(instr)) is not None:
                ev = Evaluation(
                    idx, rnd, instr, zs[i], src.scores, src.dev_score, duplicate_of=src.eval_index
                )
                rows.append(
                    self.recorder.evaluation_row(
                        key, ev, None, gen_started, generated=candidates[i].text is None
                    )
                )
            else:
                res = by_instruction[instr]
                ev = Evaluation(idx, rnd, instr, zs[i], tuple(res.scores), res.mean)
                scored_now[instr] = ev
                rows.append(
                    self.recorder.evaluation_row(
                        key, ev, res, gen_started, generated=candidates[i].text is None
                    )
                )
                calls.extend(self.recorder.call_rows(key, res))
                self.progress.scored(res)
            state.evaluations.append(ev)
        await self.recorder.append(rows, calls)
        self.progress.round_done(key, rnd, len(requests), state.best())

    async def _finish(
        self, key: RunKey, splits: TaskSplits, state: RunState, started: float, *, rounds_done: int
    ) -> RunOutcome:
        best = state.best()
        test_score = None
        test_vector: tuple[float | None, ...] = ()
        calls: list[dict[str, Any]] = []
        res = None
        if best is not None and splits.test:
            res = await self.backends.score(
                best.instruction, splits.test, splits.metric, key=key, split="test"
            )
            test_vector = tuple(res.scores)
            test_score = mean_or_none(test_vector)
            calls = self.recorder.call_rows(key, res)
            self.progress.scored(res)
        summary = self.recorder.summary_row(
            key,
            state,
            best=best,
            test_score=test_score,
            test_vector=test_vector,
            test_usage=res,
            wall_s=time.time() - started,
            generated=best is not None and _was_generated(state, best.eval_index),
        )
        await self.recorder.append([], calls, summaries=[summary])
        await self._save(key, state, rounds_done=rounds_done, finished=True)
        self.progress.run_finished(key, best.dev_score if best else None)
        return RunOutcome(
            key, best.instruction if best else None, best.dev_score if best else None, test_score
        )


def _was_generated(state: RunState, eval_index: int) -> bool:
    """Whether evaluation ``eval_index`` of a run came from the generator (not a ready text)."""
    flat = [c for _, cs in sorted(state.rounds.items()) for c in cs]
    return eval_index < len(flat) and flat[eval_index].text is None
