"""Ray actors that own one accelerator each and serve instruction generation in shared batches.

:class:`GeneratorActor` loads the model once (``num_gpus=1`` when the cluster has GPUs, CPU
otherwise) and is an *async* actor: calls from many callers (many tasks of a sweep) are queued,
and a single worker coroutine collects whatever arrived within ``batch_window_s`` (up to about
``batch_size`` requests) into one batch, runs it in a thread, and hands each caller its slice.

:class:`GeneratorPool` starts one actor per GPU (one on a CPU-only cluster unless told
otherwise), splits each call over the actors by load, and retries a call whose actor died or
became unavailable while it was in flight (bounded by ``max_retries``); Ray restarts the actor
(``max_restarts``), so the retried call lands on a fresh copy of the model.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

from izero.errors import GeneratorError
from izero.generator.model import GenerationRequest, GeneratorConfig, InstructionGenerator

logger = logging.getLogger(__name__)

DEFAULT_BATCH_WINDOW_S = 0.005
"""How long the actor waits for more requests before starting a batch (seconds)."""

DEFAULT_MAX_RESTARTS = 3
DEFAULT_MAX_RETRIES = 3
RETRY_BACKOFF_S = 0.2
"""Pause before resubmitting a call whose actor died (seconds, doubled per attempt, capped)."""
RETRY_BACKOFF_CAP_S = 5.0
DEFAULT_READY_TIMEOUT_S = 900.0
"""How long a retry waits for a restarted actor to load its model (seconds; 13B models are slow)."""


class GeneratorActor:
    """The body of the Ray actor (see :func:`remote_generator_actor`); usable in-process too.

    Args:
        generator_kwargs: keyword arguments of :class:`InstructionGenerator`.
        batch_window_s: wait this long after the first queued call for others to join.
    """

    def __init__(
        self,
        generator_kwargs: dict[str, Any],
        batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
    ) -> None:
        self._generator = InstructionGenerator(**generator_kwargs)
        self._batch_size = self._generator.config.batch_size
        self._window = batch_window_s
        self._queue: list[tuple[list[GenerationRequest], asyncio.Future[list[str]]]] = []
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._busy = False
        self._batches = 0
        self._requests = 0
        self._calls = 0
        self._started = time.time()

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Instructions for ``requests`` (in order), batched with other concurrent calls."""
        reqs = list(requests)
        if not reqs:
            return []
        for r in reqs:
            if not isinstance(r, GenerationRequest):
                raise GeneratorError(f"expected GenerationRequest objects; got {type(r).__name__}")
        loop = asyncio.get_running_loop()
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._serve())
        future: asyncio.Future[list[str]] = loop.create_future()
        self._queue.append((reqs, future))
        self._calls += 1
        self._wakeup.set()
        return await future

    async def ready(self) -> bool:
        """True once the model is loaded (the constructor has returned)."""
        return True

    async def stats(self) -> dict[str, Any]:
        """Counters: process id, batches run, requests and calls served, whether busy now."""
        return {
            "pid": os.getpid(),
            "batches": self._batches,
            "requests": self._requests,
            "calls": self._calls,
            "busy": self._busy,
            "queued_calls": len(self._queue),
            "tokens_generated": self._generator.tokens_generated,
            "uptime_s": time.time() - self._started,
            "device": str(self._generator.device),
        }

    async def _serve(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                if self._window > 0 and _count(self._queue) < self._batch_size:
                    await asyncio.sleep(self._window)
                taken = self._take()
                self._busy = True
                try:
                    await self._run(taken)
                finally:
                    self._busy = False

    async def _run(
        self, taken: list[tuple[list[GenerationRequest], asyncio.Future[list[str]]]]
    ) -> None:
        """Run the calls in ``taken`` as one batch; if it fails, run them one by one so a bad
        call (say, a soft prompt of the wrong length) fails alone, not its batch mates."""
        flat = [r for reqs, _ in taken for r in reqs]
        try:
            texts = await asyncio.to_thread(self._generator.generate, flat)
        except Exception as exc:
            if len(taken) > 1:
                for item in taken:
                    await self._run([item])
                return
            logger.warning("generation call of %d requests failed: %s", len(flat), exc)
            if not taken[0][1].done():
                taken[0][1].set_exception(exc)
            return
        self._batches += 1
        self._requests += len(flat)
        pos = 0
        for reqs, fut in taken:
            if not fut.done():
                fut.set_result(texts[pos : pos + len(reqs)])
            pos += len(reqs)

    def _take(self) -> list[tuple[list[GenerationRequest], asyncio.Future[list[str]]]]:
        """Whole calls from the head of the queue, about one batch worth (at least one call)."""
        taken = [self._queue.pop(0)]
        total = len(taken[0][0])
        while self._queue and total + len(self._queue[0][0]) <= self._batch_size:
            item = self._queue.pop(0)
            taken.append(item)
            total += len(item[0])
        return taken


def _count(queue: list[tuple[list[GenerationRequest], Any]]) -> int:
    return sum(len(reqs) for reqs, _ in queue)


@functools.lru_cache(maxsize=1)
def remote_generator_actor() -> Any:
    """The Ray actor class wrapping :class:`GeneratorActor` (created on first use)."""
    import ray

    return ray.remote(GeneratorActor)


def _actor_errors() -> tuple[type[BaseException], ...]:
    from ray.exceptions import ActorUnavailableError, RayActorError

    return (RayActorError, ActorUnavailableError)


class GeneratorPool:
    """One :class:`GeneratorActor` per GPU of the Ray cluster, load-balanced, with retries.

    Connects to the running Ray instance (``ray.init()`` is called when none is; call it
    yourself first to choose the cluster address or resources).

    Args:
        num_actors: how many actors; ``None`` = one per GPU in the cluster, or 1 without GPUs.
        max_restarts: how often Ray restarts a dead actor (reloading the model).
        max_retries: how often one call is resubmitted after its actor died or was unavailable.
        batch_window_s: see :class:`GeneratorActor`.
        num_cpus_per_actor: CPUs reserved per actor.
        use_gpu: reserve one GPU per actor; ``None`` = when the cluster has GPUs.
        ready_timeout_s: how long a retry waits for a restarting actor to reload its model.
        **generator_kwargs: keyword arguments of :class:`InstructionGenerator` (validated here,
            before any actor starts).
    """

    def __init__(
        self,
        *,
        num_actors: int | None = None,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        max_retries: int = DEFAULT_MAX_RETRIES,
        batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
        num_cpus_per_actor: float = 1,
        use_gpu: bool | None = None,
        ready_timeout_s: float = DEFAULT_READY_TIMEOUT_S,
        **generator_kwargs: Any,
    ) -> None:
        import ray

        if "model_and_tokenizer" in generator_kwargs:
            raise GeneratorError(
                "GeneratorPool loads the model inside each actor; pass model=<id or path>, "
                "not model_and_tokenizer"
            )
        GeneratorConfig(**{k: v for k, v in generator_kwargs.items()})  # validate early
        if max_restarts < 0 or max_retries < 0:
            raise GeneratorError(
                f"max_restarts and max_retries must be >= 0; got {max_restarts}, {max_retries}"
            )
        if not ray.is_initialized():
            logger.info("Ray is not initialised; starting a local Ray instance")
            ray.init()
        gpus = int(ray.cluster_resources().get("GPU", 0))
        if use_gpu is None:
            use_gpu = gpus > 0
        if num_actors is None:
            num_actors = max(1, gpus) if use_gpu else 1
        if num_actors < 1:
            raise GeneratorError(f"num_actors must be >= 1; got {num_actors}")
        self.max_retries = max_retries
        self.ready_timeout_s = ready_timeout_s
        self.retries = 0
        """Calls resubmitted after an actor failure, over the pool's lifetime."""
        cls = remote_generator_actor()
        self.actors = [
            cls.options(
                num_gpus=1 if use_gpu else 0,
                num_cpus=num_cpus_per_actor,
                max_restarts=max_restarts,
                max_task_retries=0,
            ).remote(dict(generator_kwargs), batch_window_s)
            for _ in range(num_actors)
        ]
        self._inflight = [0] * num_actors
        logger.info("started %d generator actors (gpu=%s)", num_actors, use_gpu)

    @property
    def in_flight(self) -> int:
        """Calls submitted to the actors and not yet answered."""
        return sum(self._inflight)

    # ------------------------------------------------------------------ calls
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Instructions for ``requests`` (in order); shards run on the actors concurrently."""
        shards = self._shards(list(requests))
        parts = await asyncio.gather(*(self._call_async(s) for s in shards))
        return [text for part in parts for text in part]

    def generate_sync(
        self, requests: Sequence[GenerationRequest], *, timeout_s: float | None = None
    ) -> list[str]:
        """Blocking :meth:`generate` for callers without an event loop.

        ``timeout_s`` bounds the wait for each shard's result (seconds; ``None`` = no limit).
        """
        shards = self._shards(list(requests))
        first = [self._submit(shard, self._pick()) for shard in shards]  # all run concurrently
        return [
            text
            for shard, (idx, ref) in zip(shards, first, strict=True)
            for text in self._finish_sync(shard, idx, ref, timeout_s)
        ]

    def _finish_sync(
        self, shard: list[GenerationRequest], idx: int, ref: Any, timeout_s: float | None
    ) -> list[str]:
        import ray

        attempt = 0
        while True:
            try:
                if ref is None:
                    idx = self._pick(avoid=idx)
                    ray.get(self._ready_ref(idx), timeout=self.ready_timeout_s)
                    idx, ref = self._submit(shard, idx)
                try:
                    return ray.get(ref, timeout=timeout_s)
                finally:
                    self._inflight[idx] -= 1
            except _actor_errors() as exc:
                attempt += 1
                self._check_retry(attempt, exc)
                ref = None
                time.sleep(_backoff(attempt))
            except ray.exceptions.GetTimeoutError as exc:
                raise GeneratorError(
                    f"generator actor {idx} did not answer within the time limit "
                    f"(ready_timeout_s={self.ready_timeout_s}, timeout_s={timeout_s}); "
                    "raise the limit for large models or check the actor logs"
                ) from exc

    def wait_ready(self, *, timeout_s: float | None = None) -> None:
        """Block until every actor has loaded its model."""
        import ray

        ray.get([a.ready.remote() for a in self.actors], timeout=timeout_s)

    def stats(self) -> list[dict[str, Any]]:
        """:meth:`GeneratorActor.stats` of every actor."""
        import ray

        return ray.get([a.stats.remote() for a in self.actors])

    def shutdown(self) -> None:
        """Kill the actors for good (no restart)."""
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)

    # ------------------------------------------------------------------ internals
    def _shards(self, requests: list[GenerationRequest]) -> list[list[GenerationRequest]]:
        n = min(len(self.actors), len(requests))
        if n <= 1:
            return [requests] if requests else []
        size = -(-len(requests) // n)
        return [requests[i : i + size] for i in range(0, len(requests), size)]

    def _pick(self, avoid: int | None = None) -> int:
        """The least-loaded actor, other than ``avoid`` when there is another."""
        choices = [i for i in range(len(self.actors)) if i != avoid] or [0]
        return min(choices, key=lambda i: self._inflight[i])

    def _submit(self, shard: list[GenerationRequest], idx: int) -> tuple[int, Any]:
        self._inflight[idx] += 1
        return idx, self.actors[idx].generate.remote(shard)

    def _ready_ref(self, idx: int) -> Any:
        # A restarting actor fails plain calls fast (ActorUnavailableError); a ready() call with
        # task retries waits for the restart to finish, and fails if the actor is dead for good.
        return self.actors[idx].ready.options(max_task_retries=-1).remote()

    async def _call_async(self, shard: list[GenerationRequest]) -> list[str]:
        attempt = 0
        idx: int | None = None
        while True:
            try:
                if idx is None:
                    idx = self._pick()
                else:
                    idx = self._pick(avoid=idx)
                    await asyncio.wait_for(self._ready_ref(idx), timeout=self.ready_timeout_s)
                idx, ref = self._submit(shard, idx)
                try:
                    return await ref
                finally:
                    self._inflight[idx] -= 1
            except _actor_errors() as exc:
                attempt += 1
                self._check_retry(attempt, exc)
                await asyncio.sleep(_backoff(attempt))
            except asyncio.TimeoutError as exc:
                raise GeneratorError(
                    f"generator actor {idx} did not come back within ready_timeout_s="
                    f"{self.ready_timeout_s}; raise it for large models or check the actor logs"
                ) from exc

    def _check_retry(self, attempt: int, exc: BaseException) -> None:
        if attempt > self.max_retries:
            raise GeneratorError(
                f"generator actor failed {attempt} times for the same call "
                f"(max_retries={self.max_retries}); last error: {type(exc).__name__}. "
                "Fix: check the actor logs (out of memory? model load failure?) or raise "
                "max_restarts/max_retries."
            ) from exc
        self.retries += 1
        logger.warning(
            "generator actor failed during a call (%s); resubmitting (attempt %d of %d)",
            type(exc).__name__,
            attempt,
            self.max_retries,
        )


def _backoff(attempt: int) -> float:
    return min(RETRY_BACKOFF_CAP_S, RETRY_BACKOFF_S * 2 ** (attempt - 1))
