"""The pipelined optimisation loop: propose -> generate -> de-duplicate -> score -> update.

Every (task, method, seed) run is one coroutine on the driver's event loop. Runs never wait
for each other: while one run's instructions are being scored, another's are being generated
and a third's proposals are being computed in a Ray task. Work is handed to the stages
through :class:`~izero.driver.backends.Backends`; nothing here blocks the event loop.

Nothing paid for is lost: every evaluation is appended to the results as soon as it is
scored, every round's proposals are checkpointed before they are generated, and a resumed
run replays its rounds from the checkpoint, taking finished evaluations from the results and
the rest from the response cache.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from izero.driver.plan import SOFT_PROMPT_METHODS, RunKey
from izero.driver.progress import Progress
from izero.driver.state import Evaluation, RunState, mean_or_none
from izero.errors import OptimizerError
from izero.tasks import TaskSplits

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopSettings:
    """The budget and method settings the loop needs (from the sweep config)."""

    n_init: int
    n_rounds: int
    q: int
    intrinsic_dim: int
    ape_temperature: float


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
        settings: budget and method settings.
        backends: the stages (generator, scoring, proposals); see ``Backends``.
        recorder: where rows, checkpoints and summaries go; see ``Recorder``.
        progress: progress counters, shown by the caller.
    """

    def __init__(self, *, settings: LoopSettings, backends: Any, recorder: Any, progress: Progress):
        self.settings = settings
        self.backends = backends
        self.recorder = recorder
        self.progress = progress

    async def run_all(self, runs: Sequence[tuple[RunKey, TaskSplits]]) -> list[RunOutcome]:
        """Run every run to completion, concurrently; the first stopping error cancels the rest."""
        tasks = [
            asyncio.create_task(self.run_one(key, splits), name=key.id) for key, splits in runs
        ]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def run_one(self, key: RunKey, splits: TaskSplits) -> RunOutcome:
        """One (task, method, seed) run: its rounds, then the test score of its best instruction."""
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
        checkpoint = self.recorder.checkpoint(key) or {}
        state = RunState(proposals=RunState.proposals_from_checkpoint(checkpoint))
        self.backends.restore_warm_start(key.id, checkpoint.get("warm_start"))
        if key.method in SOFT_PROMPT_METHODS:
            await self._soft_prompt_rounds(key, splits, state)
        elif key.method == "ape":
            await self._ape(key, splits, state)
        elif key.method == "manual":
            await self._manual(key, splits, state)
        else:  # config validation refuses unknown methods before any work
            raise ValueError(f"unknown method {key.method!r}")
        return await self._finish(key, splits, state, started)

    # -- methods -------------------------------------------------------------------------------

    async def _soft_prompt_rounds(self, key: RunKey, splits: TaskSplits, state: RunState) -> None:
        s = self.settings
        demos = tuple((ex.input, ex.output) for ex in splits.demos)
        for rnd in range(s.n_rounds + 1):
            z = state.proposals.get(rnd)
            if z is None:
                z = await self._proposals(key, rnd, state)
                state.proposals[rnd] = z
                await self._save(key, state, rounds_done=rnd)
            requests = [self.backends.soft_prompt_request(demos, zi, key.seed) for zi in z]
            await self._evaluate_round(key, splits, state, rnd, requests, [tuple(zi) for zi in z])
            await self._save(key, state, rounds_done=rnd + 1)

    async def _save(
        self, key: RunKey, state: RunState, *, rounds_done: int, finished: bool = False
    ) -> None:
        """Checkpoint a run: its proposals so far and the optimiser's warm start for it."""
        data = state.checkpoint(rounds_done=rounds_done, finished=finished)
        data["warm_start"] = self.backends.export_warm_start(key.id)
        await self.recorder.save_checkpoint(key, data)

    async def _proposals(self, key: RunKey, rnd: int, state: RunState) -> list[list[float]]:
        if rnd == 0 or key.method == "random":
            # Both methods share the Sobol prefix; "random" continues the same sequence.
            return self._sobol_round(key, rnd)
        obs = state.observations()
        if obs is not None and obs[0].shape[0] >= 2:
            z, y, sv = obs
            try:
                proposed = await self.backends.propose(
                    key=key.id, z=z, y=y, s=sv, seed=key.seed * 1000 + rnd
                )
                return proposed.to(torch.float64).tolist()
            except OptimizerError as err:  # a failed fit must not stop the other runs
                logger.warning("%s round %d: %s; proposing Sobol points instead", key.id, rnd, err)
        else:
            # Nothing (or one point) answered: the GP has nothing to learn from; keep exploring.
            logger.warning(
                "%s: too few answered evaluations for a GP; proposing Sobol points", key.id
            )
        return self._sobol_round(key, rnd)

    def _sobol_round(self, key: RunKey, rnd: int) -> list[list[float]]:
        """Round ``rnd``'s slice of the run's Sobol sequence (``n_init``, then ``q`` a round)."""
        s = self.settings
        start = 0 if rnd == 0 else s.n_init + (rnd - 1) * s.q
        n = s.n_init if rnd == 0 else s.q
        return self.backends.sobol(start + n, s.intrinsic_dim, seed=key.seed)[start:].tolist()

    async def _ape(self, key: RunKey, splits: TaskSplits, state: RunState) -> None:
        s = self.settings
        n_total = s.n_init + s.n_rounds * s.q
        requests = [
            self.backends.sampled_request(
                self._ape_demos(splits, i),
                temperature=s.ape_temperature,
                sample_seed=key.seed * 100_003 + i,
            )
            for i in range(n_total)
        ]
        await self._evaluate_round(key, splits, state, 0, requests, [None] * n_total)

    @staticmethod
    def _ape_demos(splits: TaskSplits, i: int) -> tuple[tuple[str, str], ...]:
        # APE samples each prompt from a different subset of demonstrations: rotate through them.
        demos = [(ex.input, ex.output) for ex in splits.demos]
        k = i % max(1, len(demos))
        return tuple(demos[k:] + demos[:k])

    async def _manual(self, key: RunKey, splits: TaskSplits, state: RunState) -> None:
        annotations = list(dict.fromkeys(self.backends.annotations(key.task)))
        if not annotations:
            logger.warning("%s: task has no human annotations; manual baseline skipped", key.id)
            return
        await self._evaluate_round(key, splits, state, 0, annotations, [None] * len(annotations))

    # -- shared machinery ---------------------------------------------------------------------

    async def _evaluate_round(
        self,
        key: RunKey,
        splits: TaskSplits,
        state: RunState,
        rnd: int,
        requests: list[Any],
        zs: list[tuple[float, ...] | None],
    ) -> None:
        """Generate (unless ``requests`` are instruction strings), de-duplicate, score, record.

        Evaluations already in the results (a resumed run) are taken from there and neither
        generated nor scored again.
        """
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

        # Identical instructions are scored once per run (earlier rounds included).
        unique = [
            instr
            for instr in dict.fromkeys(instructions[i] for i in missing)
            if state.first_with(instr) is None
        ]
        results = await asyncio.gather(
            *(
                self.backends.score(instr, splits.dev, splits.metric, key=key, split="dev")
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
                rows.append(self.recorder.evaluation_row(key, ev, None, gen_started))
            else:
                res = by_instruction[instr]
                ev = Evaluation(idx, rnd, instr, zs[i], tuple(res.scores), res.mean)
                scored_now[instr] = ev
                rows.append(self.recorder.evaluation_row(key, ev, res, gen_started))
                calls.extend(self.recorder.call_rows(key, res))
                self.progress.scored(res)
            state.evaluations.append(ev)
        await self.recorder.append(rows, calls)
        self.progress.round_done(key, rnd, len(requests), state.best())

    async def _finish(
        self, key: RunKey, splits: TaskSplits, state: RunState, started: float
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
        )
        await self.recorder.append([], calls, summaries=[summary])
        await self._save(key, state, rounds_done=self.settings.n_rounds + 1, finished=True)
        self.progress.run_finished(key, best.dev_score if best else None)
        return RunOutcome(
            key, best.instruction if best else None, best.dev_score if best else None, test_score
        )
