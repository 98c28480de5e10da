"""What the driver lends one run's method: :class:`izero.methods.MethodServices` bound to a run.

Methods never see Ray, HTTP or other runs: each call goes to the sweep's shared stages
(:class:`~izero.driver.backends.Backends`) tagged with the run, so that, e.g., its GP proposals
are batched with other runs' and its proposer calls are recorded (calls table, ``propose``)
and counted in its totals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from izero.driver.plan import RunKey
from izero.methods.base import Demos


class RunServices:
    """:class:`izero.methods.MethodServices` of run ``key`` (see there for each call).

    Args:
        key: the run.
        demos: the run's demonstrations (for generator features).
        backends: the sweep's stages; ``None`` until :meth:`bind` (methods are built, and so
            check their settings, before any stage starts).
        recorder: where the run's proposer calls are recorded (``Recorder``; None: nowhere).
        progress: the sweep's progress counters (None: not counted).
    """

    def __init__(
        self,
        key: RunKey,
        demos: Demos,
        backends: Any = None,
        *,
        recorder: Any = None,
        progress: Any = None,
    ):
        self._key = key
        self._demos = demos
        self._backends = backends
        self._recorder = recorder
        self._progress = progress

    def bind(self, backends: Any, *, recorder: Any = None, progress: Any = None) -> None:
        """Lend the sweep's stages, recorder and progress (started after the methods were
        built)."""
        self._backends = backends
        self._recorder = recorder
        self._progress = progress

    def sobol(self, n: int, d: int, *, seed: int) -> torch.Tensor:
        return self._backends.sobol(n, d, seed=seed)

    async def bo_propose(
        self,
        *,
        z: torch.Tensor,
        y: torch.Tensor,
        s: torch.Tensor,
        q: int,
        seed: int,
        warm_start: dict[str, Any] | None,
    ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        return await self._backends.bo_propose(
            key=self._key.id, z=z, y=y, s=s, q=q, seed=seed, warm_start=warm_start
        )

    async def run_cpu(self, fn: Any, /, *args: Any) -> Any:
        return await self._backends.run_cpu(fn, *args)

    async def llm_complete(
        self,
        prompts: Sequence[str],
        *,
        temperature: float,
        max_tokens: int,
        seeds: Sequence[int],
        top_p: float | None = None,
    ) -> list[str | None]:
        result = await self._backends.llm_complete(
            prompts,
            temperature=temperature,
            max_tokens=max_tokens,
            seeds=seeds,
            top_p=top_p,
            key=self._key,
        )
        if self._recorder is not None:
            await self._recorder.record_proposals(self._key, result)
        if self._progress is not None:
            self._progress.scored(result)
        return list(result.texts)

    async def features(self, zs: Sequence[Sequence[float]]) -> torch.Tensor:
        return await self._backends.features(zs, demos=self._demos, seed=self._key.seed)
