"""The scoring pool: worker processes on Ray sharing one rate limit, budget and cache.

``ScoringPool`` starts one limiter actor per endpoint and ``num_workers`` async worker actors
(each its own process, each with many calls in flight). ``await pool.score(...)`` sends one
instruction to the least busy worker; many instructions can be in flight at once.
``await pool.complete(...)`` sends a batch of free completions (an LLM proposing
instructions) the same way.
"""

from __future__ import annotations

import asyncio
import logging
import random
import resource
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from izero.blackbox.cache import ResponseCache
from izero.blackbox.client import ChatClient, ClientStats
from izero.blackbox.completion import CompletionResult, SamplingParams, complete_prompts
from izero.blackbox.config import EndpointConfig
from izero.blackbox.health import (
    HealthClient,
    HealthView,
    LocalHealth,
    RemoteHealth,
    create_health_actor,
)
from izero.blackbox.prompts import QueryTemplate
from izero.blackbox.ratelimit import (
    LeaseClient,
    LimiterUsage,
    LocalLimiter,
    RemoteLimiter,
    create_limiter_actor,
)
from izero.blackbox.scoring import Scorer, ScoreResult, score_instruction
from izero.errors import BlackBoxError
from izero.tasks.metrics import MetricError
from izero.tasks.types import Example

logger = logging.getLogger(__name__)

DEFAULT_NUM_WORKERS = 2
"""Worker processes of a pool; each keeps up to ``config.concurrency`` calls in flight."""
WORKER_MAX_CONCURRENCY = 1000
"""Concurrent method calls one async worker actor accepts (instructions in flight)."""
CLOSE_MARGIN_S = 10.0
"""Seconds :meth:`ScoringPool.close` waits for the workers beyond the request timeout (they
let requests already sent come back first, so that their answers are cached)."""


class EndpointScorer:
    """Scores instructions against one endpoint inside the current process and event loop.

    ``limiter``: a :class:`LocalLimiter`/:class:`RemoteLimiter` (``None`` = a private
    :class:`LocalLimiter`, enough when only this process calls the endpoint); ``health``: a
    :class:`LocalHealth`/:class:`RemoteHealth` (``None`` = a private one when
    ``config.outage_allowance_s`` is set, else no outage detection); ``cache_dir``:
    where the response cache lives (``None`` = no cache); ``scorer``: ``None`` =
    ``izero.tasks.metrics.score_answer``.
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        limiter=None,
        cache_dir: str | Path | None = None,
        scorer: Scorer | None = None,
        seed: int | None = None,
        health=None,
    ):
        self.config = config.resolved()
        self.limiter = limiter or LocalLimiter.from_config(self.config)
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.scorer = scorer
        self.lease = LeaseClient(self.limiter, horizon_s=self.config.lease_horizon_s)
        if health is None and self.config.outage_allowance_s is not None:
            health = LocalHealth.from_config(self.config)
        self.health = HealthClient(health) if health is not None else None
        self.client = ChatClient(
            self.config,
            lease=self.lease,
            cache=self.cache,
            rng=random.Random(seed),
            health=self.health,
        )

    async def score(
        self,
        instruction: str,
        examples: Sequence[Example],
        metric: str,
        *,
        tag: Mapping[str, Any] | None = None,
        template: QueryTemplate | None = None,
    ) -> ScoreResult:
        return await score_instruction(
            self.client,
            instruction,
            examples,
            metric,
            scorer=self.scorer,
            tag=tag,
            template=template,
        )

    async def complete(
        self,
        prompts: Sequence[str],
        params: Sequence[SamplingParams],
        *,
        tag: Mapping[str, Any] | None = None,
    ) -> CompletionResult:
        return await complete_prompts(self.client, prompts, params, tag=tag)

    @property
    def stats(self) -> ClientStats:
        return self.client.stats

    async def close(self) -> None:
        await self.client.close()
        if self.cache is not None:
            self.cache.close()


class _ScoringWorker:
    """Ray async actor body: one worker process with its own HTTP session."""

    def __init__(self, config, limiter_handle, cache_dir, scorer, seed, health_handle=None):
        self._args = (config, limiter_handle, cache_dir, scorer, seed, health_handle)
        self._scorer: EndpointScorer | None = None
        self._closed = False

    def _get(self) -> EndpointScorer:
        if self._closed:  # a call that reached the worker after close: it sends nothing
            raise BlackBoxError(f"the scoring worker for {self._args[0].endpoint} is closed")
        if self._scorer is None:
            config, handle, cache_dir, scorer, seed, health = self._args
            self._scorer = EndpointScorer(
                config,
                limiter=RemoteLimiter(handle),
                cache_dir=cache_dir,
                scorer=scorer,
                seed=seed,
                health=RemoteHealth(health) if health is not None else None,
            )
        return self._scorer

    async def score(self, instruction, examples, metric, tag, template=None):
        try:
            scorer = self._get()
            return (
                "ok",
                await scorer.score(instruction, examples, metric, tag=tag, template=template),
            )
        except (BlackBoxError, MetricError) as err:  # the driver re-raises them as they are
            return ("error", err)

    async def complete(self, prompts, params, tag):
        try:
            return ("ok", await self._get().complete(prompts, params, tag=tag))
        except BlackBoxError as err:
            return ("error", err)

    async def stats(self) -> dict:
        stats = self._get().stats
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "calls": stats.calls,
            "cache_hits": stats.cache_hits,
            "attempts": stats.attempts,
            "rate_limited": stats.rate_limited,
            "failed": stats.failed,
            "by_status": dict(stats.by_status),
            "expired_slots": self._get().lease.expired_slots,
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }

    async def flush(self) -> None:
        if self._scorer is not None:
            await self._scorer.lease.flush()

    async def close(self) -> None:
        """Stop sending; requests already sent come back and are cached; then shut down."""
        self._closed = True
        if self._scorer is not None:
            await self._scorer.close()
            self._scorer = None


@dataclass(frozen=True)
class PoolUsage:
    """Totals of a pool: paid calls, tokens, cost, 429s seen, cache hits, and the slowdowns
    of the shared rate clock those 429s caused (one per episode)."""

    calls: int
    tokens: int
    cost: float
    rate_limited: int
    cache_hits: int
    instructions: int
    slowdowns: int = 0


class ScoringPool:
    """Scores instructions on Ray: ``num_workers`` processes, one shared limiter and cache.

    Needs Ray (``ray.init`` is called with defaults if not yet initialised). ``cache_dir``:
    the run's output directory (``None`` = no cache); ``scorer``: picklable
    ``(prediction, answers, metric) -> float`` (``None`` = ``izero.tasks.metrics
    .score_answer``); ``worker_num_cpus``: CPUs Ray reserves per worker; ``limiter_name``:
    a Ray actor name to share the limiter with other pools of the same endpoint.

    Placement: the workers and the limiter run on the caller's node (the driver's), next to the
    cache; the limiter keeps its state file in ``cache_dir`` (else the temp dir), so that Ray
    can restart it there without losing its clock or budget books.
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        num_workers: int = DEFAULT_NUM_WORKERS,
        cache_dir: str | Path | None = None,
        scorer: Scorer | None = None,
        worker_num_cpus: float = 0.0,
        limiter_name: str | None = None,
        seed: int = 0,
    ):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if num_workers < 1:
            from izero.errors import ConfigError

            raise ConfigError("num_workers", num_workers, "an integer >= 1")
        self.config = config.resolved()
        node = ray.get_runtime_context().get_node_id()
        state_dir = Path(cache_dir if cache_dir is not None else tempfile.gettempdir())
        self.limiter = create_limiter_actor(
            self.config, name=limiter_name, node_id=node, state_dir=state_dir / "limiter"
        )
        self.health = (
            create_health_actor(self.config, node_id=node)
            if self.config.outage_allowance_s is not None
            else None
        )
        worker_cls = ray.remote(
            num_cpus=worker_num_cpus, max_concurrency=WORKER_MAX_CONCURRENCY, max_restarts=0
        )(_ScoringWorker)
        # On the caller's node: the workers share one cache file on its local disk (the cache
        # is SQLite), and the limiter's slot times are exact on that node's clock.
        here = NodeAffinitySchedulingStrategy(node, soft=False)
        cache = str(cache_dir) if cache_dir is not None else None
        self.workers = [
            worker_cls.options(scheduling_strategy=here).remote(
                self.config, self.limiter, cache, scorer, seed + i, self.health
            )
            for i in range(num_workers)
        ]
        self._load = [0] * num_workers
        self._cache_hits = 0
        self._instructions = 0
        self._closed = False
        self._final_usage: LimiterUsage | None = None

    async def score(
        self,
        instruction: str,
        examples: Sequence[Example],
        metric: str,
        *,
        tag: Mapping[str, Any] | None = None,
        template: QueryTemplate | None = None,
    ) -> ScoreResult:
        """Score one instruction on ``examples`` (answers, per-example scores, mean, costs);
        ``template``: the query template (``None`` = izero's).

        ``metric``: the task's ``splits.metric`` (a name or a hashable, picklable
        :class:`~izero.tasks.metrics.MetricSpec`), passed to the scorer in the worker.
        Raises a :class:`~izero.errors.BlackBoxError` subclass when the run must stop
        (budget, quota, key, URL, context length), and
        :class:`~izero.tasks.metrics.MetricError` when the metric fails on an example.
        """
        if self._closed:
            raise BlackBoxError(f"the scoring pool for {self.config.endpoint} is closed")
        payload = await self._on_worker(
            "score", instruction, tuple(examples), metric, dict(tag) if tag else None, template
        )
        self._instructions += 1
        return payload

    async def _on_worker(self, method: str, *args: Any) -> Any:
        """``method(*args)`` on the least busy worker; its result, or its error raised here."""
        index = min(range(len(self.workers)), key=self._load.__getitem__)
        self._load[index] += 1
        try:
            status, payload = await getattr(self.workers[index], method).remote(*args)
        except Exception as err:  # a worker process died, or raised an unexpected error
            cause = getattr(err, "cause", None) or err
            raise BlackBoxError(
                f"scoring worker {index} for {self.config.endpoint} failed: "
                f"{type(err).__name__}({type(cause).__name__}: {str(cause)[:200]}). Fix: see "
                "the Ray worker logs; the run can be resumed (paid answers are cached)"
            ) from None
        finally:
            self._load[index] -= 1
        if status == "error":
            raise payload
        self._cache_hits += payload.cache_hits
        return payload

    async def complete(
        self,
        prompts: Sequence[str],
        params: Sequence[SamplingParams],
        *,
        tag: Mapping[str, Any] | None = None,
    ) -> CompletionResult:
        """Complete each prompt (one user message) with its own sampling parameters.

        Through the same limiter, retries, cache, accounting and budget caps as
        :meth:`score`; ``params[i]`` (temperature, max_tokens, seed) is part of call ``i``'s
        request and cache key. Raises like :meth:`score`.
        """
        if self._closed:
            raise BlackBoxError(f"the scoring pool for {self.config.endpoint} is closed")
        if len(prompts) != len(params):
            raise ValueError(f"{len(prompts)} prompts but {len(params)} sampling parameters")
        return await self._on_worker(
            "complete", tuple(prompts), tuple(params), dict(tag) if tag else None
        )

    async def score_many(
        self,
        instructions: Sequence[str],
        examples: Sequence[Example],
        metric: str,
    ) -> list[ScoreResult]:
        """Score several instructions concurrently (results in the same order)."""
        return list(await asyncio.gather(*(self.score(i, examples, metric) for i in instructions)))

    async def health_view(self) -> HealthView | None:
        """The endpoint's health as the pool's workers see it (``None``: not tracked)."""
        if self.health is None or self._closed:
            return None
        return await self.health.view.remote()

    def usage(self) -> PoolUsage:
        """Totals so far across every worker (from the shared limiter)."""
        import ray

        if self._final_usage is not None:
            totals = self._final_usage
        else:
            ray.get([w.flush.remote() for w in self.workers])
            totals: LimiterUsage = ray.get(self.limiter.usage.remote())
        return PoolUsage(
            calls=totals.calls,
            tokens=totals.tokens,
            cost=totals.cost,
            rate_limited=totals.rate_limited,
            cache_hits=self._cache_hits,
            instructions=self._instructions,
            slowdowns=totals.slowdowns,
        )

    def worker_stats(self) -> list[dict]:
        """Per-worker counters (calls, attempts, 429s, statuses, CPU seconds)."""
        import ray

        return ray.get([w.stats.remote() for w in self.workers])

    def close(self) -> None:
        """Flush bookings, close sessions and caches, and stop the actors."""
        import ray

        if self._closed:
            return
        self._closed = True
        try:
            ray.get(
                [w.close.remote() for w in self.workers],
                timeout=self.config.timeout_s + CLOSE_MARGIN_S,
            )
        except Exception:
            logger.warning("scoring workers of %s did not close cleanly", self.config.endpoint)
        try:
            self._final_usage = ray.get(self.limiter.usage.remote(), timeout=30)
            ray.get(self.limiter.forget.remote(), timeout=30)
        except Exception:
            logger.warning("usage totals of %s could not be read", self.config.endpoint)
        for actor in [*self.workers, self.limiter, *([self.health] if self.health else [])]:
            ray.kill(actor)

    def __enter__(self) -> ScoringPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
