"""The stages as the driver sees them: generator pool, scoring pool and proposals.

This is the one module that imports all three stages (``generator``, ``blackbox``, ``bo``).
It builds them from a :class:`~izero.config.SweepConfig` and gives the loop a small surface:
``generate``, ``score``, ``propose``, ``sobol`` and ``annotations``.

Proposals run in Ray tasks, off the driver's event loop; requests of runs that reach their
proposal step together are batched into one call of the batched proposer, whose warm-start
state the driver keeps between rounds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from izero.config import SweepConfig
from izero.driver.plan import RunKey
from izero.tasks import Example, Task

logger = logging.getLogger(__name__)

#: Seconds the proposal batcher waits for more runs to reach their proposal step.
PROPOSAL_BATCH_WINDOW_S = 0.05
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


def _propose_in_worker(
    options: Any, states: dict, z: list, y: list, s: list, keys: list, q: int, seeds: list
) -> tuple[list[torch.Tensor], dict]:
    """Body of the proposal Ray task: one batched proposer call for several runs."""
    torch.set_num_threads(1)
    from izero.bo import BatchProposer, TaskObservations

    proposer = BatchProposer(options)
    if states:
        proposer.load_state_dict(states)
    observations = [TaskObservations(z=zi, y=yi, s=si) for zi, yi, si in zip(z, y, s, strict=True)]
    out = proposer.propose(observations, q=q, seeds=seeds, keys=keys)
    return [t.detach().cpu() for t in out], proposer.state_dict()


@dataclass
class _Pending:
    key: str
    z: torch.Tensor
    y: torch.Tensor
    s: torch.Tensor
    seed: int
    future: asyncio.Future


class ProposalBatcher:
    """Collects proposal requests of many runs and answers them from batched Ray tasks.

    Args:
        options: the :class:`izero.bo.ProposerOptions` of every call.
        q: soft prompts per proposal.
        window_s: how long the first request waits for others to join its batch.
    """

    def __init__(self, *, options: Any, q: int, window_s: float = PROPOSAL_BATCH_WINDOW_S):
        import ray

        self.options = options
        self.q = q
        self.window_s = window_s
        self._remote = ray.remote(num_cpus=1, max_retries=2)(_propose_in_worker)
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task | None = None
        self._states: dict[str, Any] = {}
        self.batches: list[int] = []
        """Size of each batch submitted (for tests and benchmarks)."""

    async def propose(
        self, *, key: str, z: torch.Tensor, y: torch.Tensor, s: torch.Tensor, seed: int
    ) -> torch.Tensor:
        """``q x d`` new soft prompts for run ``key`` given its observations."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(key, z, y, s, seed, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_after_window())
        return await future

    async def _flush_after_window(self) -> None:
        await asyncio.sleep(self.window_s)
        batch, self._pending, self._flusher = self._pending, [], None
        self.batches.append(len(batch))
        keys = [p.key for p in batch]
        states = _subset_state(self._states, keys)
        try:
            proposals, new_state = await self._remote.remote(
                self.options,
                states,
                [p.z for p in batch],
                [p.y for p in batch],
                [p.s for p in batch],
                keys,
                self.q,
                [p.seed for p in batch],
            )
        except BaseException as err:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        _merge_state(self._states, new_state)
        for p, z in zip(batch, proposals, strict=True):
            p.future.set_result(z)

    def export(self, key: str) -> dict[str, Any] | None:
        """JSON-safe warm-start state of run ``key`` (for its checkpoint), if any."""
        hyper = self._states.get(_HYPER, {}).get(key)
        if hyper is None:
            return None
        return {
            "version": self._states.get("version"),
            "values": {name: t.tolist() for name, t in hyper.items()},
            "shapes": {name: list(t.shape) for name, t in hyper.items()},
        }

    def restore(self, key: str, data: dict[str, Any] | None) -> None:
        """Put back the warm-start state :meth:`export` gave, so a resumed run proposes alike."""
        if not data:
            return
        hyper = {
            name: torch.tensor(v, dtype=torch.float64).reshape(data["shapes"][name])
            for name, v in data["values"].items()
        }
        self._states.setdefault("version", data.get("version"))
        self._states.setdefault(_HYPER, {})[key] = hyper


#: Key of the per-task hyper-parameters in ``BatchProposer.state_dict()``.
_HYPER = "hyperparameters"


def _subset_state(states: dict, keys: Sequence[str]) -> dict:
    """The warm-start state of ``keys`` only."""
    if not states:
        return {}
    per_key = states.get(_HYPER, {})
    return {**states, _HYPER: {k: per_key[k] for k in keys if k in per_key}}


def _merge_state(states: dict, new: dict) -> None:
    per_key = {**states.get(_HYPER, {}), **new.get(_HYPER, {})}
    states.update(new)
    states[_HYPER] = per_key


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
    from izero.blackbox import EndpointConfig, ScoringPool

    base_url, model, api_key, cache_url = bb.base_url, bb.model, None, None
    if server is not None:
        base_url, api_key, model = server.base_url, SIMULATED_API_KEY, model or SIMULATED_MODEL
        # its port changes from run to run, its answers do not: a resume hits the cache
        cache_url = f"simulated://seed={bb.simulated.seed}"
    endpoint = EndpointConfig(
        base_url=base_url,
        model=model,
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
    )
    return model, ScoringPool(endpoint, cache_dir=cache_dir)


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
    return ProposalBatcher(options=options, q=config.budget.q)


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

    def soft_prompt_request(
        self, demos: tuple[tuple[str, str], ...], z: Sequence[float], seed: int
    ) -> Any:
        from izero.generator import GenerationRequest

        return GenerationRequest(demos=demos, z=tuple(z), projection_seed=seed)

    def sampled_request(
        self, demos: tuple[tuple[str, str], ...], *, temperature: float, sample_seed: int
    ) -> Any:
        from izero.generator import GenerationRequest

        return GenerationRequest(demos=demos, temperature=temperature, sample_seed=sample_seed)

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
            return await self.scoring.score(instruction, examples, metric, tag=tag)

    async def propose(
        self, *, key: str, z: torch.Tensor, y: torch.Tensor, s: torch.Tensor, seed: int
    ) -> torch.Tensor:
        seed += self.config.optimizer.seed_offset
        return await self.proposals.propose(key=key, z=z, y=y, s=s, seed=seed)

    def export_warm_start(self, key: str) -> dict[str, Any] | None:
        return self.proposals.export(key)

    def restore_warm_start(self, key: str, data: dict[str, Any] | None) -> None:
        self.proposals.restore(key, data)

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
