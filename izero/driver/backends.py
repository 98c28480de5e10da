"""The stages as the driver sees them: generator pool, scoring pool and proposals.

This is the one module (with :mod:`izero.driver.stages`, which builds them from a
:class:`~izero.config.SweepConfig`) that holds all three stages (``generator``, ``blackbox``,
``bo``). It gives the loop a small surface:
``generate``, ``score``, and what methods borrow through :mod:`izero.driver.services`
(``sobol``, ``bo_propose``, ``run_cpu``, ``llm_complete``, ``features``). ``llm_complete`` goes
to the ``proposer`` endpoint when the config has one, else to the black box's own pool.

Proposals run in Ray tasks, off the driver's event loop (:mod:`izero.driver.proposals`);
requests of runs that reach their proposal step together are batched into one call of the
batched proposer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from izero.config import SweepConfig
from izero.driver.plan import RunKey
from izero.driver.proposals import run_cpu
from izero.driver.reask import score_answered
from izero.driver.stages import (
    any_method,
    generator_pool,
    proposal_batcher,
    proposer_pool,
    query_templates,
    scoring_backend,
    start_simulated_server,
)
from izero.errors import BlackBoxError, GeneratorError
from izero.methods.base import Candidate, Demos
from izero.tasks import Example, Task

logger = logging.getLogger(__name__)

#: Fewest instructions scored at once (see ``Backends._score_in_turn``).
MIN_SCORING_TURNS = 4


def as_cache_hit(result: Any) -> Any:
    """A copy of a scoring result as a second caller sees it: answered calls are cache hits."""
    records = tuple(
        replace(
            r,
            cached=True,
            status="cached",
            attempts=0,
            prompt_tokens=0,
            completion_tokens=0,
            cost=0.0,
            attempt_times=(),
            attempt_statuses=(),
        )
        if r.ok
        else r
        for r in result.call_records
    )
    return replace(
        result,
        calls=0,
        prompt_tokens=0,
        completion_tokens=0,
        cost=0.0,
        cache_hits=sum(r.cached for r in records),
        call_records=records,
    )


class Backends:
    """Everything the loop calls, built from a config; close it when the sweep ends.

    Args:
        config: the sweep config.
        tasks: the loaded tasks by name (the simulated server learns their answers).
        cache_dir: local directory of the black-box response cache.
    """

    def __init__(self, *, config: SweepConfig, tasks: dict[str, Task], cache_dir: Path):
        self.config = config
        self.tasks = tasks
        self.server = None
        self._in_flight: dict[tuple, asyncio.Future] = {}
        self._asks_in_flight: dict[tuple, asyncio.Future] = {}
        examples_per_call = max(1, config.budget.n_dev)
        self._turns = asyncio.Semaphore(
            max(MIN_SCORING_TURNS, -(-config.blackbox.concurrency // examples_per_call))
        )
        self.query_templates = query_templates(config.prompts)
        if config.blackbox.backend == "simulated":
            self.server = start_simulated_server(config, tasks)
        self.blackbox_model, self.scoring = scoring_backend(config, self.server, cache_dir)
        # the LLM that proposes instructions (ape): a separate endpoint, else the black box
        self.proposer_model: str | None = None
        self.proposer: Any = None
        self._own_proposer = False
        if config.proposer is not None and any_method(config, "llm_proposer"):
            self.proposer_model, self.proposer = proposer_pool(config, cache_dir)
            self._own_proposer = True
        elif config.proposer is None and config.blackbox.backend != "hf":
            self.proposer_model, self.proposer = self.blackbox_model, self.scoring
        # no generator actors (nor GPUs) for sweeps of methods that never generate
        self.generator = generator_pool(config) if any_method(config, "uses_generator") else None
        self.proposals = proposal_batcher(config)

    # -- what the loop calls ------------------------------------------------------------------

    def generation_request(self, candidate: Candidate, *, demos: Demos, seed: int) -> Any:
        """What the generator turns into ``candidate``'s instruction, or the text itself.

        A soft prompt is decoded after the run's ``demos`` with the projection of the run's
        ``seed``; a sampled candidate from its own demos (or the run's).
        """
        from izero.generator import GenerationRequest

        if candidate.text is not None:
            return candidate.text
        if candidate.z is not None:
            return GenerationRequest(demos=demos, z=candidate.z, projection_seed=seed)
        return GenerationRequest(
            demos=candidate.demos or demos,
            temperature=candidate.temperature,
            sample_seed=candidate.sample_seed,
        )

    async def generate(self, requests: Sequence[Any]) -> list[str]:
        if self.generator is None:
            raise GeneratorError(
                "a candidate needs the generator, but no method of this sweep declares "
                "uses_generator (the sweep started no generator actors). Fix: set "
                "uses_generator = True on the method class"
            )
        return await self.generator.generate(list(requests))

    async def score(
        self, instruction: str, examples: Sequence[Example], metric: str, *, key: RunKey, split: str
    ) -> Any:
        """Score ``instruction`` with the query template of ``split`` (``config.prompts``);
        identical scorings already in flight are joined, and one that shares some requests with
        a scoring in flight waits for it: no request is paid twice.

        Runs of one task and seed share their splits (and ``instructzero`` and ``random`` their
        Sobol start), so they often ask for the same scores at the same moment, before the
        response cache holds them. The joining run gets the answers as cache hits (no calls,
        no tokens, no cost), exactly as if it had come a moment later.
        """
        template = self.query_templates.get(split, self.query_templates["dev"])
        flight = (instruction, metric, tuple((e.input, e.answers) for e in examples), template)
        asks = {(instruction, template, e.input) for e in examples}
        while True:
            pending = self._in_flight.get(flight)
            if pending is not None:
                return as_cache_hit(await asyncio.shield(pending))
            # Another scoring asks some of the same requests (runs of other seeds split the
            # examples differently, so the same instruction meets overlapping sets): wait for
            # it, then those answers come from the response cache instead of being paid twice.
            overlapping = {f for ask, f in self._asks_in_flight.items() if ask in asks}
            if not overlapping:
                break
            await asyncio.wait(overlapping)
        tag = {"task": key.task, "method": key.method, "seed": key.seed, "split": split}
        future = asyncio.ensure_future(
            self._score_in_turn(instruction, examples, metric, tag, template)
        )
        self._in_flight[flight] = future
        for ask in asks:
            self._asks_in_flight[ask] = future
        try:
            return await asyncio.shield(future)
        finally:
            if self._in_flight.get(flight) is future:
                del self._in_flight[flight]
            for ask in asks:
                if self._asks_in_flight.get(ask) is future:
                    del self._asks_in_flight[ask]

    async def _score_in_turn(
        self,
        instruction: str,
        examples: Sequence[Example],
        metric: str,
        tag: dict,
        template: Any = None,
    ) -> Any:
        """Score once a turn is free: instructions are scored first come, first served.

        Without turns every instruction of every run would be in flight at once, the rate
        limit would interleave their calls, and all runs would finish their rounds together
        and then wait for their proposals together, leaving the limit idle. With about
        ``concurrency`` calls' worth of instructions in flight, runs finish rounds one after
        another, and one run's proposals are computed while the others' are scored.
        """
        async with self._turns:
            # examples left unanswered are asked again before the evaluation is recorded
            return await score_answered(
                lambda: self.scoring.score(
                    instruction, examples, metric, tag=tag, template=template
                )
            )

    # -- what methods borrow (see izero.driver.services) ----------------------------------------

    async def bo_propose(
        self,
        *,
        key: str,
        z: torch.Tensor,
        y: torch.Tensor,
        s: torch.Tensor,
        q: int,
        seed: int,
        warm_start: dict[str, Any] | None,
    ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        seed += self.config.optimizer.seed_offset
        return await self.proposals.propose(
            key=key, z=z, y=y, s=s, q=q, seed=seed, warm_start=warm_start
        )

    async def run_cpu(self, fn: Any, /, *args: Any) -> Any:
        return await run_cpu(fn, *args)

    async def llm_complete(
        self,
        prompts: Sequence[str],
        *,
        temperature: float,
        max_tokens: int,
        seeds: Sequence[int],
        key: RunKey,
        top_p: float | None = None,
    ) -> Any:
        """Completions of ``prompts`` from the proposer endpoint (a
        :class:`~izero.blackbox.CompletionResult`), each call with its seed; through the
        proposer's limiter, retries, cache, accounting and budget caps, which are the black
        box's when it proposes."""
        from izero.blackbox import SamplingParams

        if self.proposer is None:
            raise BlackBoxError(
                f"{key.id}: this sweep has no LLM proposer endpoint (a local 'hf' black box "
                "cannot propose). Fix: add a proposer section with base_url and model"
            )
        params = [
            SamplingParams(temperature=temperature, max_tokens=max_tokens, seed=s, top_p=top_p)
            for s in seeds
        ]
        tag = {"task": key.task, "method": key.method, "seed": key.seed, "split": "propose"}
        return await self.proposer.complete(prompts, params, tag=tag)

    async def features(
        self, zs: Sequence[Sequence[float]], *, demos: Demos, seed: int
    ) -> torch.Tensor:
        """``n x hidden`` float32 features of soft prompts ``zs`` after ``demos``, projected with
        the run's ``seed`` (the projection its instructions are generated with), computed by the
        generator actors in chunks that interleave with other runs' generation."""
        from izero.generator import FeatureRequest

        requests = [FeatureRequest(demos=demos, z=tuple(z), projection_seed=seed) for z in zs]
        return await self.generator.features(requests)

    def sobol(self, n: int, d: int, *, seed: int) -> torch.Tensor:
        from izero.bo import initial_design

        return initial_design(n, d, seed=seed)

    def annotations(self, task: str) -> tuple[str, ...]:
        return self.tasks[task].annotations

    def close(self) -> None:
        closers = [self.scoring.close]
        if self.generator is not None:
            closers.append(self.generator.shutdown)
        if self._own_proposer:
            closers.append(self.proposer.close)
        for closer in closers:
            try:
                closer()
            except Exception:  # closing must not hide the error that ended the sweep
                logger.warning("closing %s failed", closer, exc_info=True)
        if self.server is not None:
            self.server.stop()
