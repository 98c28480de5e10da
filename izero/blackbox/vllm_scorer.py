"""Scoring against a vLLM server izero owns: the server's actor plus the normal scoring pool.

:class:`VLLMScorer` starts the server (:class:`~izero.blackbox.vllm_server.VLLMServerHandle`),
then a :class:`~izero.blackbox.pool.ScoringPool` against it, so calls get the response cache,
retries, accounting and (only when configured) the rate limit of any endpoint. ``close()``
stops the pool, then the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from izero.blackbox.config import EndpointConfig
from izero.blackbox.pool import DEFAULT_NUM_WORKERS, PoolUsage, ScoringPool
from izero.blackbox.scoring import Scorer, ScoreResult
from izero.blackbox.vllm_server import VLLMServerHandle, VLLMServerOptions
from izero.tasks.types import Example

logger = logging.getLogger(__name__)


class VLLMScorer:
    """Scores instructions on a vLLM server it started; see :meth:`start`."""

    def __init__(self, handle: VLLMServerHandle, pool: ScoringPool):
        self.handle = handle
        self.pool = pool

    @classmethod
    def start(
        cls,
        server: VLLMServerOptions,
        *,
        endpoint: Mapping[str, Any] | None = None,
        cache_dir: str | Path | None = None,
        scorer: Scorer | None = None,
        num_workers: int = DEFAULT_NUM_WORKERS,
        num_cpus: float = 1.0,
    ) -> VLLMScorer:
        """Start the server, wait until it is healthy, and a scoring pool against it.

        ``endpoint``: more :class:`EndpointConfig` fields (``max_tokens``, ``rpm``, ``timeout_s``,
        ...; not ``base_url``, ``model``, ``api_key`` or ``cache_url``, which come from the
        server); ``num_cpus``: CPUs Ray reserves for the server's actor. Answers are cached
        under :attr:`VLLMServerOptions.identity`, so a resumed sweep does not ask again.
        """
        handle = VLLMServerHandle.start_options(server, num_cpus=num_cpus)
        try:
            config = EndpointConfig(
                base_url=handle.base_url,
                model=handle.served_model,
                api_key=handle.api_key,
                cache_url=server.identity,
                **dict(endpoint or {}),
            )
            pool = ScoringPool(config, num_workers=num_workers, cache_dir=cache_dir, scorer=scorer)
        except BaseException:
            handle.stop()
            raise
        return cls(handle, pool)

    @property
    def served_model(self) -> str:
        """The model name results record."""
        return self.handle.served_model

    @property
    def base_url(self) -> str:
        return self.handle.base_url

    async def score(
        self,
        instruction: str,
        examples: Sequence[Example],
        metric: str,
        *,
        tag: Mapping[str, Any] | None = None,
    ) -> ScoreResult:
        return await self.pool.score(instruction, examples, metric, tag=tag)

    async def score_many(
        self, instructions: Sequence[str], examples: Sequence[Example], metric: str
    ) -> list[ScoreResult]:
        return await self.pool.score_many(instructions, examples, metric)

    def usage(self) -> PoolUsage:
        return self.pool.usage()

    def worker_stats(self) -> list[dict]:
        return self.pool.worker_stats()

    def close(self) -> None:
        """Stop the scoring pool, then the server (idempotent)."""
        try:
            self.pool.close()
        finally:
            self.handle.stop()

    def __enter__(self) -> VLLMScorer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
