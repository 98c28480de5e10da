"""Ray actors that own one accelerator each and serve generation and features in shared batches.

:class:`GeneratorActor` builds its engine once (``generator.engine``: ``hf`` or ``vllm``;
``num_gpus=1`` when the cluster has GPUs, CPU otherwise) and is an *async* actor: calls from many
callers (many tasks of a sweep) are queued, and a single worker coroutine collects whatever
arrived within ``batch_window_s`` (up to about ``batch_size`` requests) into one batch, runs it
in a thread, and hands each caller its slice. Feature calls are served in ``batch_size`` chunks
that alternate with generation batches (see :class:`GeneratorActor`).

:class:`GeneratorPool` starts one actor per GPU (one on a CPU-only cluster unless told
otherwise), splits each call over the actors by load, and retries a call whose actor died or
became unavailable while it was in flight (bounded by ``max_retries``) on another actor; Ray
restarts the failed actor (``max_restarts``; on another node when its node was lost), and the
pool sends it calls again once it answers ``ready``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Sequence
from typing import Any

import torch

from izero.errors import GeneratorError
from izero.generator.model import FeatureRequest, GenerationRequest, GeneratorConfig

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
DEFAULT_CLOSE_TIMEOUT_S = 60.0
"""How long :meth:`GeneratorPool.shutdown` lets the actors release their engines (seconds)."""


class GeneratorActor:
    """The body of the Ray actor (see :func:`remote_generator_actor`); usable in-process too.

    Owns one engine (:func:`izero.generator.engines.build_engine`, chosen by
    ``generator_kwargs["engine"]``) and serves three calls: :meth:`generate` (instructions),
    :meth:`generate_tokens` (their token ids) and :meth:`features`.

    Scheduling: generation calls are coalesced into batches of about ``batch_size`` requests.
    Feature calls are cut into chunks of at most ``batch_size`` requests, taken round-robin
    over the waiting feature calls, and chunks alternate with generation batches: a generation
    request waits for at most one feature chunk, however large the feature calls ahead of it
    (INSTINCT's 10,000-point domains), and a small feature call is not stuck behind a big one.

    Args:
        generator_kwargs: keyword arguments of :class:`GeneratorConfig`.
        batch_window_s: wait this long after the first queued generation call for others to
            join.
    """

    def __init__(
        self,
        generator_kwargs: dict[str, Any],
        batch_window_s: float = DEFAULT_BATCH_WINDOW_S,
    ) -> None:
        from izero.generator.engines import build_engine

        self._engine = build_engine(GeneratorConfig(**generator_kwargs))
        self._batch_size = self._engine.config.batch_size
        self._window = batch_window_s
        self._queue: list[_GenerationCall] = []
        self._jobs: collections.deque[_FeatureJob] = collections.deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._generation_turn = False
        self._busy = False
        self._batches = 0
        self._requests = 0
        self._calls = 0
        self._feature_batches = 0
        self._feature_requests = 0
        self._feature_calls = 0
        self._started = time.time()

    async def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Instructions for ``requests`` (in order), batched with other concurrent calls."""
        return await self._enqueue_generation(requests, tokens=False)

    async def generate_tokens(self, requests: Sequence[GenerationRequest]) -> list[list[int]]:
        """The new token ids of ``requests`` (in order), batched like :meth:`generate`."""
        return await self._enqueue_generation(requests, tokens=True)

    async def features(self, requests: Sequence[FeatureRequest]) -> torch.Tensor:
        """``n x hidden`` float32 features of ``requests`` (in order), computed in chunks of
        at most ``batch_size`` that alternate with generation batches."""
        reqs = list(requests)
        for r in reqs:
            if not isinstance(r, FeatureRequest):
                raise GeneratorError(f"expected FeatureRequest objects; got {type(r).__name__}")
        if not self._engine.serves_features or not reqs:
            return await asyncio.to_thread(self._engine.features, reqs)  # its error, or 0 rows
        future = self._start_worker()
        self._jobs.append(_FeatureJob(reqs, future))
        self._feature_calls += 1
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    async def ready(self) -> bool:
        """True once the model is loaded (the constructor has returned)."""
        return True

    async def close(self) -> None:
        """Release the engine (vLLM: stop its engine core and remove its files)."""
        await asyncio.to_thread(self._engine.close)

    async def stats(self) -> dict[str, Any]:
        """Counters: process id, batches run, requests and calls served, whether busy now."""
        return {
            "pid": os.getpid(),
            "engine": self._engine.name,
            "batches": self._batches,
            "requests": self._requests,
            "calls": self._calls,
            "feature_batches": self._feature_batches,
            "feature_requests": self._feature_requests,
            "feature_calls": self._feature_calls,
            "busy": self._busy,
            "queued_calls": len(self._queue),
            "queued_feature_requests": sum(job.remaining for job in self._jobs),
            "tokens_generated": self._engine.tokens_generated,
            "uptime_s": time.time() - self._started,
            "device": str(self._engine.device),
            "child_pids": _child_pids(),
            "engine_dir": str(self._engine.workdir) if self._engine.workdir else None,
        }

    # ------------------------------------------------------------------ scheduling
    async def _enqueue_generation(self, requests: Sequence[GenerationRequest], *, tokens: bool):
        reqs = list(requests)
        if not reqs:
            return []
        for r in reqs:
            if not isinstance(r, GenerationRequest):
                raise GeneratorError(f"expected GenerationRequest objects; got {type(r).__name__}")
        future = self._start_worker()
        self._queue.append(_GenerationCall(reqs, future, tokens))
        self._calls += 1
        assert self._wakeup is not None
        self._wakeup.set()
        return await future

    def _start_worker(self) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._serve())
        return loop.create_future()

    async def _serve(self) -> None:
        assert self._wakeup is not None
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue or self._jobs:
                generation = bool(self._queue) and (self._generation_turn or not self._jobs)
                if generation and self._window > 0 and _count(self._queue) < self._batch_size:
                    await asyncio.sleep(self._window)
                self._busy = True
                try:
                    if generation:
                        await self._run(self._take())
                    else:
                        await self._run_features(self._take_features())
                finally:
                    self._busy = False
                self._generation_turn = not generation

    async def _run(self, taken: list[_GenerationCall]) -> None:
        """Run the calls in ``taken`` as one batch; if it fails, run them one by one so a bad
        call (say, a soft prompt of the wrong length) fails alone, not its batch mates."""
        flat = [r for call in taken for r in call.requests]
        try:
            results = await asyncio.to_thread(self._generate_batch, taken, flat)
        except Exception as exc:
            if len(taken) > 1:
                for call in taken:
                    await self._run([call])
                return
            logger.warning("generation call of %d requests failed: %s", len(flat), exc)
            if not taken[0].future.done():
                taken[0].future.set_exception(exc)
            return
        self._batches += 1
        self._requests += len(flat)
        for call, result in zip(taken, results, strict=True):
            if not call.future.done():
                call.future.set_result(result)

    def _generate_batch(self, taken: list[_GenerationCall], flat: list[GenerationRequest]):
        tokens = self._engine.generate_tokens(flat)
        results: list[Any] = []
        pos = 0
        for call in taken:
            part = tokens[pos : pos + len(call.requests)]
            results.append(part if call.tokens else self._engine.clean(part))
            pos += len(call.requests)
        return results

    def _take(self) -> list[_GenerationCall]:
        """Whole calls from the head of the queue, about one batch worth (at least one call)."""
        taken = [self._queue.pop(0)]
        total = len(taken[0].requests)
        while self._queue and total + len(self._queue[0].requests) <= self._batch_size:
            item = self._queue.pop(0)
            taken.append(item)
            total += len(item.requests)
        return taken

    def _take_features(self) -> list[tuple[_FeatureJob, int, int]]:
        """Up to ``batch_size`` feature requests, round-robin over the waiting calls:
        ``(job, start, stop)`` slices of their requests."""
        parts: list[tuple[_FeatureJob, int, int]] = []
        room = self._batch_size
        while self._jobs and room > 0:
            job = self._jobs.popleft()
            if job.future.done():  # its caller gave up: drop the rest
                continue
            start = job.next
            stop = min(len(job.requests), start + room)
            job.next = stop
            parts.append((job, start, stop))
            room -= stop - start
            if job.next < len(job.requests):
                self._jobs.append(job)  # to the back: the next call gets the next chunk
        return parts

    async def _run_features(self, parts: list[tuple[_FeatureJob, int, int]]) -> None:
        """One features batch; a failure fails only the call whose requests caused it."""
        if not parts:
            return
        flat = [r for job, start, stop in parts for r in job.requests[start:stop]]
        try:
            feats = await asyncio.to_thread(self._engine.features, flat)
        except Exception as exc:
            if len(parts) > 1:
                for part in parts:
                    await self._run_features([part])
                return
            job = parts[0][0]
            logger.warning("features call of %d requests failed: %s", len(job.requests), exc)
            if job in self._jobs:
                self._jobs.remove(job)
            if not job.future.done():
                job.future.set_exception(exc)
            return
        self._feature_batches += 1
        self._feature_requests += len(flat)
        pos = 0
        for job, start, stop in parts:
            job.add(start, feats[pos : pos + stop - start])
            pos += stop - start


@dataclasses.dataclass
class _GenerationCall:
    requests: list[GenerationRequest]
    future: asyncio.Future[Any]
    tokens: bool


class _FeatureJob:
    """One features call: its requests, how far they are taken, and the rows done so far."""

    def __init__(self, requests: list[FeatureRequest], future: asyncio.Future[Any]) -> None:
        self.requests = requests
        self.future = future
        self.next = 0
        self._done = 0
        self._rows: dict[int, torch.Tensor] = {}

    @property
    def remaining(self) -> int:
        return len(self.requests) - self.next

    def add(self, start: int, rows: torch.Tensor) -> None:
        if self.future.done():  # failed earlier
            return
        self._rows[start] = rows
        self._done += rows.shape[0]
        if self._done == len(self.requests):
            self.future.set_result(torch.cat([self._rows[k] for k in sorted(self._rows)]))


def _child_pids() -> list[int]:
    import psutil

    return [p.pid for p in psutil.Process().children(recursive=True)]


def _count(queue: list[_GenerationCall]) -> int:
    return sum(len(call.requests) for call in queue)


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
        **generator_kwargs: keyword arguments of :class:`GeneratorConfig` (``engine``,
            ``model``, ...), validated here, before any actor starts.
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
        self.config = GeneratorConfig(**generator_kwargs)  # validate early
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
        self._down: set[int] = set()
        """Actors that failed a call and have not answered ``ready`` since (Ray is restarting
        them, after a lost node on another one): calls go to the others meanwhile."""
        self._watchers: dict[int, asyncio.Task] = {}
        logger.info(
            "started %d generator actors (engine=%s, gpu=%s)",
            num_actors,
            self.config.engine,
            use_gpu,
        )

    @property
    def in_flight(self) -> int:
        """Calls submitted to the actors and not yet answered."""
        return sum(self._inflight)

    # ------------------------------------------------------------------ calls
    async def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """Instructions for ``requests`` (in order); shards run on the actors concurrently."""
        shards = self._shards(list(requests))
        parts = await asyncio.gather(*(self._call_async("generate", s) for s in shards))
        return [text for part in parts for text in part]

    async def features(self, requests: Sequence[FeatureRequest]) -> torch.Tensor:
        """``n x hidden`` float32 features of ``requests`` (in order; see
        :class:`FeatureRequest`), computed by the same actors as :meth:`generate`, in chunks of
        ``batch_size`` that alternate with generation batches (other runs keep generating
        while a large domain is computed). Shards run on the actors concurrently.

        Raises :class:`GeneratorError` at once when the pool's engine cannot serve features.
        """
        reqs = self._feature_requests(requests)
        shards = self._shards(reqs) or [reqs]  # no requests: one actor answers 0 x hidden
        parts = await asyncio.gather(*(self._call_async("features", s) for s in shards))
        return torch.cat(parts)

    def features_sync(
        self, requests: Sequence[FeatureRequest], *, timeout_s: float | None = None
    ) -> torch.Tensor:
        """Blocking :meth:`features` for callers without an event loop."""
        reqs = self._feature_requests(requests)
        shards = self._shards(reqs) or [reqs]
        first = [self._submit("features", shard, self._pick()) for shard in shards]
        return torch.cat(
            [
                self._finish_sync("features", shard, idx, ref, timeout_s)
                for shard, (idx, ref) in zip(shards, first, strict=True)
            ]
        )

    def _feature_requests(self, requests: Sequence[FeatureRequest]) -> list[FeatureRequest]:
        from izero.generator.engines import ENGINES_SERVING_FEATURES

        if self.config.engine not in ENGINES_SERVING_FEATURES:
            raise GeneratorError(
                f"generator engine {self.config.engine!r} cannot compute features; engines "
                f"that can: {', '.join(ENGINES_SERVING_FEATURES)}. Fix: set generator.engine: "
                f"{ENGINES_SERVING_FEATURES[0]} for methods that need features (instinct)"
            )
        return list(requests)

    def generate_sync(
        self, requests: Sequence[GenerationRequest], *, timeout_s: float | None = None
    ) -> list[str]:
        """Blocking :meth:`generate` for callers without an event loop.

        ``timeout_s`` bounds the wait for each shard's result (seconds; ``None`` = no limit).
        """
        shards = self._shards(list(requests))
        first = [self._submit("generate", shard, self._pick()) for shard in shards]
        return [
            text
            for shard, (idx, ref) in zip(shards, first, strict=True)
            for text in self._finish_sync("generate", shard, idx, ref, timeout_s)
        ]

    def _finish_sync(
        self, method: str, shard: list[Any], idx: int, ref: Any, timeout_s: float | None
    ) -> Any:
        import ray

        attempt = 0
        while True:
            try:
                if ref is None:
                    idx = self._pick(avoid=idx)
                    ray.get(self._ready_ref(idx), timeout=self.ready_timeout_s)
                    idx, ref = self._submit(method, shard, idx)
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

    def shutdown(self, *, close_timeout_s: float = DEFAULT_CLOSE_TIMEOUT_S) -> None:
        """Let each actor release its engine (vLLM: stop its engine core, remove its files;
        at most ``close_timeout_s`` seconds), then kill the actors for good (no restart)."""
        import ray

        refs = [actor.close.remote() for actor in self.actors]
        done, _ = ray.wait(refs, num_returns=len(refs), timeout=close_timeout_s)
        for ref in done:
            with contextlib.suppress(Exception):  # a dead actor has nothing left to close
                ray.get(ref)
        for actor in self.actors:
            ray.kill(actor, no_restart=True)

    # ------------------------------------------------------------------ internals
    def _up(self) -> list[int]:
        """Actors not known to be down (all of them when every one is)."""
        return [i for i in range(len(self.actors)) if i not in self._down] or list(
            range(len(self.actors))
        )

    def _shards(self, requests: list[Any]) -> list[list[Any]]:
        n = min(len(self._up()), len(requests))
        if n <= 1:
            return [requests] if requests else []
        size = -(-len(requests) // n)
        return [requests[i : i + size] for i in range(0, len(requests), size)]

    def _pick(self, avoid: int | None = None) -> int:
        """The least-loaded actor that is up, other than ``avoid`` when there is another."""
        choices = [i for i in self._up() if i != avoid]
        choices = choices or [i for i in range(len(self.actors)) if i != avoid] or [0]
        return min(choices, key=lambda i: self._inflight[i])

    def _mark_down(self, idx: int) -> None:
        """Send no calls to actor ``idx`` until it answers ``ready`` again (watched here)."""
        if idx in self._down:
            return
        self._down.add(idx)
        self._watchers[idx] = asyncio.get_running_loop().create_task(self._watch(idx))

    async def _watch(self, idx: int) -> None:
        try:
            await asyncio.wait_for(self._ready_ref(idx), timeout=self.ready_timeout_s)
        except Exception as exc:  # dead for good, or not back in time: it stays out
            logger.warning("generator actor %d did not come back (%s)", idx, type(exc).__name__)
            return
        self._down.discard(idx)
        logger.info("generator actor %d is back", idx)

    def _submit(self, method: str, shard: list[Any], idx: int) -> tuple[int, Any]:
        self._inflight[idx] += 1
        return idx, getattr(self.actors[idx], method).remote(shard)

    def _ready_ref(self, idx: int) -> Any:
        # A restarting actor fails plain calls fast (ActorUnavailableError); a ready() call with
        # task retries waits for the restart to finish, and fails if the actor is dead for good.
        return self.actors[idx].ready.options(max_task_retries=-1).remote()

    async def _call_async(self, method: str, shard: list[Any]) -> Any:
        attempt = 0
        idx: int | None = None
        while True:
            try:
                if idx is None:
                    idx = self._pick()
                else:
                    idx = self._pick(avoid=idx)
                    await asyncio.wait_for(self._ready_ref(idx), timeout=self.ready_timeout_s)
                idx, ref = self._submit(method, shard, idx)
                try:
                    return await ref
                finally:
                    self._inflight[idx] -= 1
            except _actor_errors() as exc:
                attempt += 1
                if idx is not None:
                    self._mark_down(idx)
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
