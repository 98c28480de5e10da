"""Optimiser work off the driver's event loop: batched GP proposals and CPU tasks on Ray.

:class:`ProposalBatcher` answers the ``bo_propose`` requests of runs that reach their proposal
step together in Ray tasks: one per run when the proposer fits each run alone
(``ProposerOptions.isolate_tasks``, the default: the runs' fits then use several CPUs at once),
else one call of the batched proposer (:class:`izero.bo.BatchProposer`) for all of them. Each
request carries its run's warm-start state and gets the new one back, so a run's state lives
with the run (in its method's checkpoint), not in the batcher: its proposals depend on nothing
else.
:func:`run_cpu` runs any other pure function of a method in a Ray task with one thread.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import torch

#: Seconds the proposal batcher waits for more runs to reach their proposal step.
PROPOSAL_BATCH_WINDOW_S = 0.05
#: Key of the per-run hyper-parameters in ``BatchProposer.state_dict()``.
_HYPER = "hyperparameters"


def warm_start_to_json(version: int, hyper: dict[str, torch.Tensor]) -> dict[str, Any]:
    """One run's fitted GP hyper-parameters as JSON-safe lists (exact float64 reprs)."""
    return {
        "version": version,
        "values": {name: t.to(torch.float64).tolist() for name, t in hyper.items()},
        "shapes": {name: list(t.shape) for name, t in hyper.items()},
    }


def warm_start_from_json(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`warm_start_to_json` (float64 tensors)."""
    return {
        name: torch.tensor(v, dtype=torch.float64).reshape(data["shapes"][name])
        for name, v in data["values"].items()
    }


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


def _call_with_one_thread(fn: Any, args: tuple) -> Any:
    """Body of :func:`run_cpu`'s Ray task (small GP and network work is fastest on one thread)."""
    torch.set_num_threads(1)
    return fn(*args)


@dataclass
class _Pending:
    key: str
    z: torch.Tensor
    y: torch.Tensor
    s: torch.Tensor
    q: int
    seed: int
    warm_start: dict[str, Any] | None
    future: asyncio.Future


class ProposalBatcher:
    """Collects proposal requests of many runs and answers them from batched Ray tasks.

    Args:
        options: the :class:`izero.bo.ProposerOptions` of every call.
        window_s: how long the first request waits for others to join its batch.
    """

    def __init__(self, *, options: Any, window_s: float = PROPOSAL_BATCH_WINDOW_S):
        import ray

        self.options = options
        self.window_s = window_s
        self._remote = ray.remote(num_cpus=1, max_retries=2)(_propose_in_worker)
        self._pending: list[_Pending] = []
        self._flusher: asyncio.Task | None = None
        self.batches: list[int] = []
        """Size of each batch submitted (for tests and benchmarks)."""

    async def propose(
        self,
        *,
        key: str,
        z: torch.Tensor,
        y: torch.Tensor,
        s: torch.Tensor,
        q: int,
        seed: int,
        warm_start: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, dict[str, Any] | None]:
        """``q x d`` new soft prompts for run ``key`` and its new warm-start state."""
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(key, z, y, s, q, seed, warm_start, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_after_window())
        return await future

    async def _flush_after_window(self) -> None:
        await asyncio.sleep(self.window_s)
        batch, self._pending, self._flusher = self._pending, [], None
        if getattr(self.options, "isolate_tasks", False):
            # each run is fitted alone anyway: one Ray task per run spreads them over the CPUs
            groups = [[p] for p in batch]
        else:
            # one proposer call per q (runs of one sweep share q; mixed q only in tests)
            by_q: dict[int, list[_Pending]] = {}
            for p in batch:
                by_q.setdefault(p.q, []).append(p)
            groups = list(by_q.values())
        await asyncio.gather(*(self._submit(group) for group in groups))

    async def _submit(self, batch: list[_Pending]) -> None:
        self.batches.append(len(batch))
        keys = [p.key for p in batch]
        warm = {p.key: p.warm_start for p in batch if p.warm_start}
        states: dict[str, Any] = {}
        if warm:
            version = next(iter(warm.values()))["version"]
            states = {
                "version": version,
                _HYPER: {k: warm_start_from_json(w) for k, w in warm.items()},
            }
        try:
            proposals, new_state = await self._remote.remote(
                self.options,
                states,
                [p.z for p in batch],
                [p.y for p in batch],
                [p.s for p in batch],
                keys,
                batch[0].q,
                [p.seed for p in batch],
            )
        except BaseException as err:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(err)
            return
        hyper = new_state.get(_HYPER, {})
        for p, z in zip(batch, proposals, strict=True):
            state = hyper.get(p.key)
            warm_json = warm_start_to_json(new_state["version"], state) if state else None
            if not p.future.done():
                p.future.set_result((z, warm_json))


@functools.cache
def _cpu_task() -> Any:
    import ray

    return ray.remote(num_cpus=1, max_retries=2)(_call_with_one_thread)


async def run_cpu(fn: Any, /, *args: Any) -> Any:
    """``fn(*args)`` in a Ray task (one CPU, one torch thread), awaited off the event loop."""
    return await _cpu_task().remote(fn, args)
