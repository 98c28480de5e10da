"""The stages as the driver sees them: generator pool, scoring pool and proposals.

This is the one module that imports all three stages (``generator``, ``blackbox``, ``bo``).
It builds them from a :class:`~izero.config.SweepConfig` and gives the loop a small surface:
``generate``, ``score``, and what methods borrow through :mod:`izero.driver.services`
(``sobol``, ``bo_propose``, ``run_cpu``, ``llm_complete``, ``features``).

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
from izero.driver.proposals import ProposalBatcher, run_cpu
from izero.driver.reask import score_answered
from izero.errors import BlackBoxError, GeneratorError
from izero.methods.base import Candidate, Demos
from izero.tasks import Example, Task

logger = logging.getLogger(__name__)

#: API key the simulated server expects; it is a local test server, not a secret.
SIMULATED_API_KEY = "sk-izero-simulated"
#: Model name the simulated server reports.
SIMULATED_MODEL = "izero-sim"
#: Fewest instructions scored at once (see ``Backends._score_in_turn``).
MIN_SCORING_TURNS = 4
#: Simulated 5xx faults: the config's ``error_rate`` is split evenly between these.
SIMULATED_5XX = ("500", "502", "503")


def start_simulated_server(config: SweepConfig, tasks: dict[str, Task]) -> Any:
    """Start the offline OpenAI-compatible endpoint on 127.0.0.1, knowing ``tasks``' answers."""
    from izero.blackbox import SimulatedOptions, SimulatedServer
    from izero.tasks.builtin import BUILTIN_TASKS

    sim = config.blackbox.simulated
    faults = {code: sim.error_rate / len(SIMULATED_5XX) for code in SIMULATED_5XX}
    faults.update(hang=sim.timeout_rate, malformed=sim.malformed_rate, drop=sim.drop_rate)
    server = SimulatedServer(
        tasks=list(tasks.values()),
        keywords={
            name: BUILTIN_TASKS[name].keywords
            for name, task in tasks.items()
            if task.source == "builtin" and name in BUILTIN_TASKS
        },
        options=SimulatedOptions(
            seed=sim.seed,
            model=config.blackbox.model or SIMULATED_MODEL,
            latency_s=sim.latency_s,
            rpm=sim.rpm,
            window_s=60.0,
            fault_rates={k: v for k, v in faults.items() if v > 0},
            hang_s=2 * config.blackbox.timeout_s,
            api_key=SIMULATED_API_KEY,
        ),
        in_subprocess=True,  # keeps a busy server off the driver's GIL
    )
    server.start()
    return server


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


def _scoring_backend(config: SweepConfig, server: Any, cache_dir: Path) -> tuple[str, Any]:
    """The black box of ``config``: (model name, scorer with ``async score(...)``)."""
    bb = config.blackbox
    if bb.backend == "hf":
        from izero.blackbox import HFBlackBoxOptions, HFScorer

        options = HFBlackBoxOptions(
            model_path=bb.model,
            max_new_tokens=bb.max_tokens,
            device="cuda" if bb.num_gpus > 0 else "cpu",
            dtype="auto",
        )
        scorer = HFScorer(options, cache_dir=cache_dir, num_gpus=bb.num_gpus)
        return bb.model, scorer
    from izero.blackbox import ScoringPool

    if server is None:
        endpoint = endpoint_config(config)
    else:
        # its port changes from run to run, its answers do not: a resume hits the cache
        endpoint = endpoint_config(
            config,
            base_url=server.base_url,
            model=bb.model or SIMULATED_MODEL,
            api_key=SIMULATED_API_KEY,
            cache_url=f"simulated://seed={bb.simulated.seed}",
        )
    return endpoint.model, ScoringPool(endpoint, cache_dir=cache_dir)


def endpoint_config(
    config: SweepConfig,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    cache_url: str | None = None,
) -> Any:
    """The :class:`~izero.blackbox.EndpointConfig` of ``config``'s black box (``base_url``,
    ``model``, ``api_key``: the simulated server's, instead of the config's)."""
    from izero.blackbox import EndpointConfig

    bb = config.blackbox
    return EndpointConfig(
        base_url=base_url or bb.base_url,
        model=model or bb.model,
        api_key=api_key,
        api_key_env=bb.api_key_env,
        temperature=bb.temperature,
        max_tokens=bb.max_tokens,
        headers=dict(bb.headers),
        timeout_s=bb.timeout_s,
        rpm=bb.rpm,
        tpm=bb.tpm,
        max_retries=bb.max_retries,
        price_prompt_per_1k=bb.price_per_1k_prompt,
        price_completion_per_1k=bb.price_per_1k_completion,
        max_calls=bb.max_calls,
        max_total_tokens=bb.max_total_tokens,
        max_cost=bb.max_cost,
        concurrency=bb.concurrency,
        cache_url=cache_url,
        outage_allowance_s=bb.outage_allowance_s,
    )


def _generator_pool(config: SweepConfig) -> Any:
    from izero.generator import GeneratorPool

    g = config.generator
    return GeneratorPool(
        num_actors=g.num_actors,
        model=g.model,
        dtype=g.dtype,
        device=g.device,
        max_new_tokens=g.max_new_tokens,
        n_prompt_tokens=g.n_prompt_tokens,
        intrinsic_dim=g.intrinsic_dim,
        projection_init=g.projection_init,
        projection_scale=g.projection_scale,
        batch_size=g.batch_size,
    )


def _proposal_batcher(config: SweepConfig) -> ProposalBatcher:
    from izero.bo import ProposerOptions

    o = config.optimizer
    options = ProposerOptions(
        kernel=o.kernel,
        acquisition=o.acquisition,
        num_restarts=o.num_restarts,
        raw_samples=o.raw_samples,
    )
    return ProposalBatcher(options=options)


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
        examples_per_call = max(1, config.budget.n_dev)
        self._turns = asyncio.Semaphore(
            max(MIN_SCORING_TURNS, -(-config.blackbox.concurrency // examples_per_call))
        )
        if config.blackbox.backend == "simulated":
            self.server = start_simulated_server(config, tasks)
        self.blackbox_model, self.scoring = _scoring_backend(config, self.server, cache_dir)
        self.generator = _generator_pool(config)
        self.proposals = _proposal_batcher(config)

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
        return await self.generator.generate(list(requests))

    async def score(
        self, instruction: str, examples: Sequence[Example], metric: str, *, key: RunKey, split: str
    ) -> Any:
        """Score ``instruction``; identical requests already in flight are joined, not repaid.

        Runs of one task and seed share their splits (and ``instructzero`` and ``random`` their
        Sobol start), so they often ask for the same scores at the same moment, before the
        response cache holds them. The joining run gets the answers as cache hits (no calls,
        no tokens, no cost), exactly as if it had come a moment later.
        """
        flight = (instruction, metric, tuple((e.input, e.answers) for e in examples))
        pending = self._in_flight.get(flight)
        if pending is not None:
            return as_cache_hit(await asyncio.shield(pending))
        tag = {"task": key.task, "method": key.method, "seed": key.seed, "split": split}
        future = asyncio.ensure_future(self._score_in_turn(instruction, examples, metric, tag))
        self._in_flight[flight] = future
        try:
            return await asyncio.shield(future)
        finally:
            if self._in_flight.get(flight) is future:
                del self._in_flight[flight]

    async def _score_in_turn(
        self, instruction: str, examples: Sequence[Example], metric: str, tag: dict
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
                lambda: self.scoring.score(instruction, examples, metric, tag=tag)
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
    ) -> list[str | None]:
        raise BlackBoxError(
            f"{key.id}: this sweep has no LLM proposer endpoint; only methods that propose "
            "with an LLM need one"
        )

    async def features(
        self, zs: Sequence[Sequence[float]], *, demos: Demos, seed: int
    ) -> torch.Tensor:
        raise GeneratorError(
            "generator features are not available from this generator pool; "
            "use generator.engine: hf"
        )

    def sobol(self, n: int, d: int, *, seed: int) -> torch.Tensor:
        from izero.bo import initial_design

        return initial_design(n, d, seed=seed)

    def annotations(self, task: str) -> tuple[str, ...]:
        return self.tasks[task].annotations

    def close(self) -> None:
        for closer in (self.scoring.close, self.generator.shutdown):
            try:
                closer()
            except Exception:  # closing must not hide the error that ended the sweep
                logger.warning("closing %s failed", closer, exc_info=True)
        if self.server is not None:
            self.server.stop()
