"""One rate limit and budget per endpoint, shared by every worker process.

The limiter is a GCRA ("virtual scheduling") clock: request slots are handed out evenly
spaced, ``interval = max(60 / rpm, tokens * 60 / tpm)`` seconds apart, never bunched, so a
server that enforces a per-minute limit over much shorter windows (60,000 RPM as 1,000 per
second) sees an even stream. Workers lease slots in chunks covering ``lease_horizon_s`` seconds
(one round trip per chunk, not per request) and pay back token estimates once the answer's
``usage`` is known. Slot times are absolute on the limiter's monotonic clock, which every
process on its host shares, so workers whose round trips differ do not bunch; a worker on
another host places them from half its round trip. A 429 pauses everybody (``Retry-After``),
slows the clock and ramps it back; one burst of 429s is one slowdown, and only 429 episodes
closer together than 100 requests (over 1 % rejected) cut the rate hard.

Grants never reach further ahead than :meth:`LimiterCore.max_lead_s`. When the limiter's actor
dies, Ray restarts it and re-sends the calls that were in flight; it restores its clock and
budget from a state file written before each answer left it (:mod:`izero.blackbox
.limiter_state`), books each re-sent call once (every booking call carries a ticket), and
without a state file pauses for the longest lead a grant can have, so slots granted before the
crash and after it never bunch.

:class:`LimiterCore` is the pure logic (injectable clock, unit-testable with a fake clock);
:func:`create_limiter_actor` serves it to a Ray cluster; :class:`LocalLimiter` serves it inside
one process; :class:`LeaseClient` is what a worker process uses.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from izero.blackbox.errors import BudgetExhaustedError, EndpointError
from izero.blackbox.limiter_state import StateFile, TicketBook, restore, snapshot

logger = logging.getLogger(__name__)

SECONDS_PER_MINUTE = 60.0
SLOWDOWN_ON_429 = 0.98
"""Rate multiplier on an isolated 429 (jitter at a short server window, most likely)."""
SLOWDOWN_ON_REPEATED_429 = 0.85
"""Rate multiplier on a 429 episode that follows the previous one within
``REPEATED_429_REQUESTS`` requests: more than 1 % of requests rejected means the limit is lower
than configured (and the server sends no ``x-ratelimit-limit-*`` to say so)."""
REPEATED_429_REQUESTS = 100
EPISODE_429S = 3
"""So many 429s inside one episode are no jitter burst: the rate is cut hard at once."""
EPISODE_RTT_S = 0.25
"""A 429 episode lasts one lease horizon plus this after its first 429: requests sent on slots
leased before the slowdown still come back rejected then; they are one event, not several.
(A 429 comes back without generation, so one round trip, not the model's latency.)"""
MIN_RATE_FACTOR = 0.25
RAMP_UP_PER_S = 0.05
"""Share of the limit the rate factor recovers per second after a slowdown."""
PROBE_FROM = 0.97
PROBE_UP_PER_S = 0.001
"""Once repeated 429s have shown where the limit really is (a ceiling on the rate factor: the
server sends no ``x-ratelimit-limit-*``), the factor recovers fast only to ``PROBE_FROM`` of
that ceiling, then probes upwards slowly (0.1 % of the configured limit per second); a 429
while probing moves the ceiling there and steps back to ``PROBE_FROM`` of it. So a limit learned
from 429s alone is held within a few percent, not overrun every few seconds."""
MAX_PAUSE_S = 120.0
DEFAULT_PAUSE_S = 1.0
"""Pause after a 429 that says nothing about when to retry."""
MAX_LEAD_HORIZONS = 8
MAX_LEAD_SLOTS = 8
"""Grants reach at most ``max(8 lease horizons, 8 slots)`` ahead of now (or of a pause's end):
workers each hold about one horizon of slots, so this binds only with many workers, and it
bounds how long a limiter restarted without its state must wait before granting again."""


@dataclass(frozen=True)
class Settlement:
    """What one leased slot finally cost. ``sent``: a request went out on it; ``paid``: it was
    answered (billed). Token and cost figures are the reservation and the actual usage;
    ``rate_tokens`` is what the rate clock was charged (``None``: the reservation).
    ``adjust``: no slot's settlement but a correction of the TPM clock by ``actual_tokens``
    (the call that took a slot is expected to use that many more tokens than it charged)."""

    reserved_tokens: float
    actual_tokens: float
    reserved_cost: float
    actual_cost: float
    sent: bool
    paid: bool
    rate_tokens: float | None = None
    adjust: bool = False


@dataclass(frozen=True)
class LimiterUsage:
    """Totals the limiter has seen: paid calls, tokens, cost, 429s, slots granted and the
    slowdowns the 429s caused (one per episode)."""

    calls: int
    tokens: int
    cost: float
    rate_limited: int
    slots_granted: int
    slowdowns: int = 0


class LimiterCore:
    """Rate and budget state of one endpoint.

    ``rpm``/``tpm``: limits per minute (``None`` = unlimited); ``margin``: share kept free;
    ``horizon_s``: seconds of capacity per lease. ``clock`` returns seconds (monotonic).
    Budget caps count reservations, so they hold before usage is known.
    """

    def __init__(
        self,
        *,
        rpm: float | None,
        tpm: float | None,
        margin: float,
        horizon_s: float,
        endpoint: str = "",
        max_calls: int | None = None,
        max_total_tokens: int | None = None,
        max_cost: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.rpm = rpm
        self.tpm = tpm
        self.margin = margin
        self.horizon_s = horizon_s
        self.endpoint = endpoint
        self.max_calls = max_calls
        self.max_total_tokens = max_total_tokens
        self.max_cost = max_cost
        self.clock = clock
        self.tat = clock()
        self.paused_until = 0.0
        self.rate_factor = 1.0
        self.ceiling: float | None = None
        self.limits_stated = False
        self._factor_at = clock()
        self._token_debt = 0.0
        self._debt_at = clock()
        self.fatal: BaseException | None = None
        self._last_429_at = -float("inf")  # start of the latest 429 episode
        self._episode_429s = 0
        self._last_gap = 0.0
        self.last_lease_at = self.tat
        # budget: committed (settled) plus outstanding reservations
        self.calls = 0
        self.tokens = 0.0
        self.cost = 0.0
        self.res_calls = 0
        self.res_tokens = 0.0
        self.res_cost = 0.0
        self.rate_limited = 0
        self.slowdowns = 0
        self.slots_granted = 0

    # -- rate ---------------------------------------------------------------------------
    def _factor(self, now: float) -> float:
        dt = max(0.0, now - self._factor_at)
        factor = self.rate_factor
        if self.ceiling is None:
            factor += RAMP_UP_PER_S * dt
        else:  # fast up to just below the limit learned from 429s, then slowly
            fast = max(0.0, min(dt, (PROBE_FROM * self.ceiling - factor) / RAMP_UP_PER_S))
            factor += RAMP_UP_PER_S * fast + PROBE_UP_PER_S * (dt - fast)
        self.rate_factor = min(1.0, factor)
        self._factor_at = now
        return self.rate_factor

    def interval(self, est_tokens: float, now: float | None = None) -> float:
        """Seconds between two slots for calls of ``est_tokens`` tokens (0 if unlimited)."""
        factor = self._factor(self.clock() if now is None else now) * (1.0 - self.margin)
        gaps = [0.0]
        if self.rpm:
            gaps.append(SECONDS_PER_MINUTE / (self.rpm * factor))
        if self.tpm:
            gaps.append(est_tokens * SECONDS_PER_MINUTE / (self.tpm * factor))
        return max(gaps)

    def max_lead_s(self, gap: float | None = None) -> float:
        """The furthest ahead (seconds past now, or past a pause's end) a slot is granted."""
        gap = self._last_gap if gap is None else gap
        return max(MAX_LEAD_HORIZONS * self.horizon_s, MAX_LEAD_SLOTS * gap)

    def pause_for_recovery(self) -> float:
        """A limiter that lost its state pauses until every slot granted before can have
        passed (:meth:`max_lead_s` plus one lease); returns the pause in seconds."""
        gap = self.interval(1.0)
        pause = self.max_lead_s(gap) + max(self.horizon_s, gap)
        now = self.clock()
        self.paused_until = max(self.paused_until, now + pause)
        self.tat = max(self.tat, self.paused_until)
        return pause

    def lease(
        self,
        n: int,
        *,
        est_tokens: float,
        est_cost: float,
        settlements: Sequence[Settlement] = (),
        rate_tokens: float | None = None,
    ) -> list[float]:
        """Grant up to ``n`` slots; returns their delays in seconds from now (ascending), or
        none while the budget caps are held by reservations not yet settled, or while slots
        already granted reach :meth:`max_lead_s` ahead (ask again shortly).

        ``est_tokens``/``est_cost``: the budget reservation per call (an upper bound);
        ``rate_tokens``: tokens per call charged to the TPM clock (default ``est_tokens``;
        workers pass their running estimate of actual usage).

        Raises the stored fatal error, or :class:`BudgetExhaustedError` when not even one more
        call fits the budget caps once every reservation is settled.
        """
        self.settle(settlements)
        if self.fatal is not None:
            raise self.fatal
        now = self.clock()
        gap = self.interval(est_tokens if rate_tokens is None else rate_tokens, now)
        self._last_gap = gap
        n = max(1, int(n))
        if gap > 0:
            n = min(n, max(1, math.floor(self.horizon_s / gap)))
        n = min(n, self._budget_room(est_tokens, est_cost))
        if n <= 0 and self.res_calls > 0:
            # the budget is held by reservations, which unused slots give back: ask again soon
            return []
        if n <= 0:
            raise BudgetExhaustedError(
                f"budget cap reached: {self._budget_text()}; the next call (about "
                f"{est_tokens:.0f} tokens) would exceed it",
                endpoint=self.endpoint,
                fix="raise max_calls / max_total_tokens / max_cost, or resume the run later "
                "(answers already paid for are cached)",
            )
        start = max(now, self.tat, self.paused_until)
        if start - max(now, self.paused_until) > self.max_lead_s(gap):
            return []
        self.last_lease_at = now
        delays = [start + i * gap - now for i in range(n)]
        self.tat = start + n * gap
        self.res_calls += n
        self.res_tokens += n * est_tokens
        self.res_cost += n * est_cost
        self.slots_granted += n
        return delays

    def _budget_room(self, est_tokens: float, est_cost: float) -> int:
        room = 1 << 30
        if self.max_calls is not None:
            room = min(room, int(self.max_calls - self.calls - self.res_calls))
        if self.max_total_tokens is not None and est_tokens > 0:
            left = self.max_total_tokens - self.tokens - self.res_tokens
            room = min(room, math.floor(left / est_tokens))
        if self.max_cost is not None and est_cost > 0:
            left = self.max_cost - self.cost - self.res_cost
            room = min(room, math.floor(left / est_cost + 1e-9))
        return room

    def _budget_text(self) -> str:
        parts = []
        if self.max_calls is not None:
            parts.append(f"{self.calls} of max_calls={self.max_calls} used")
        if self.max_total_tokens is not None:
            parts.append(f"{self.tokens:.0f} of max_total_tokens={self.max_total_tokens} used")
        if self.max_cost is not None:
            parts.append(f"{self.cost:.6f} of max_cost={self.max_cost} spent")
        return ", ".join(parts) or "no cap"

    def settle(self, settlements: Sequence[Settlement]) -> None:
        """Book what leased slots finally cost and correct the clock by the token error.

        Tokens used beyond what the clock was charged move it later. Tokens charged and not used
        never move it earlier (new slots would bunch with ones already granted: a burst the
        server would see); they offset later under-charges instead: at most one lease horizon's
        worth of tokens, fading within about a horizon (credit saved up long ago would be a
        burst in the server's current window).
        """
        if self._token_debt < 0:
            now = self.clock()
            self._token_debt *= math.exp(-max(0.0, now - self._debt_at) / self.horizon_s)
            self._debt_at = now
        for s in settlements:
            if s.adjust:
                self._token_debt += s.actual_tokens
                continue
            self.res_calls -= 1
            self.res_tokens -= s.reserved_tokens
            self.res_cost -= s.reserved_cost
            if s.paid:
                self.calls += 1
                self.tokens += s.actual_tokens
                self.cost += s.actual_cost
            if s.sent and self.tpm:
                charged = s.reserved_tokens if s.rate_tokens is None else s.rate_tokens
                self._token_debt += s.actual_tokens - charged
        if not self.tpm:
            return
        if self._token_debt > 0:
            factor = self.rate_factor * (1.0 - self.margin)
            self.tat += self._token_debt * SECONDS_PER_MINUTE / (self.tpm * factor)
            self._token_debt = 0.0
        else:
            credit = self.tpm / SECONDS_PER_MINUTE * self.horizon_s
            self._token_debt = max(self._token_debt, -credit)
            self._debt_at = self.clock()

    def rate_limited_by_server(self, retry_after_s: float | None) -> None:
        """A 429 (rate limit): pause every worker for ``retry_after_s`` and slow down.

        One slowdown per episode (:data:`EPISODE_RTT_S`): a lone episode (jitter at a short
        server window) slows the clock a little; an episode soon after the previous one
        (:data:`REPEATED_429_REQUESTS`), or one of :data:`EPISODE_429S` 429s, a lot."""
        now = self.clock()
        self.rate_limited += 1
        pause = min(MAX_PAUSE_S, DEFAULT_PAUSE_S if retry_after_s is None else retry_after_s)
        episode_end = self._last_429_at + self.horizon_s + EPISODE_RTT_S
        if now < self.paused_until:
            pass  # a request sent before the pause we are in: nothing new
        elif now >= episode_end:
            self._slow_down(now, now - episode_end < REPEATED_429_REQUESTS * self._last_gap)
        else:
            self._episode_429s += 1
            if self._episode_429s >= EPISODE_429S:
                self._slow_down(now, True)
        self.paused_until = max(self.paused_until, now + pause)
        self.tat = max(self.tat, self.paused_until)

    def _slow_down(self, now: float, hard: bool) -> None:
        """Start a 429 episode: cut the rate factor. Hard (repeated 429s): the limit is lower
        than configured, and the factor it was cut from is the :data:`PROBE_FROM` ceiling from
        then on; a later episode lowers the ceiling by at most that much (429s of an uneven
        stream, tokens especially, must not ratchet it down). A server that states its limit
        is believed: its 429s are uneven pacing, and only cost a lone slowdown."""
        cut = SLOWDOWN_ON_REPEATED_429 if hard and not self.limits_stated else SLOWDOWN_ON_429
        before = self._factor(now)
        if self.ceiling is not None and before >= PROBE_FROM * self.ceiling - 1e-9:
            cut = PROBE_FROM  # probing above a limit learned before: it is about here
        if self.limits_stated:
            pass
        elif self.ceiling is not None:
            self.ceiling = max(before, PROBE_FROM * self.ceiling)
        elif hard:
            self.ceiling = before  # where the server said no again
        self.rate_factor = max(MIN_RATE_FACTOR, before * cut)
        self._last_429_at = now
        self._episode_429s = 1
        self.slowdowns += 1

    def server_hint(
        self,
        *,
        limit_requests: float | None = None,
        limit_tokens: float | None = None,
        pause_s: float | None = None,
    ) -> None:
        """Adopt tighter per-minute limits the server reports (``x-ratelimit-limit-*``) and a
        pause until its window resets when it reports nothing remaining. A server that states
        its limits is believed: its 429s slow the clock but set no :data:`PROBE_FROM` ceiling."""
        if limit_requests or limit_tokens:
            self.limits_stated = True
        if limit_requests and (self.rpm is None or limit_requests < self.rpm):
            logger.info(
                "%s: server reports %s requests/min; adopting it", self.endpoint, limit_requests
            )
            self.rpm = float(limit_requests)
        if limit_tokens and (self.tpm is None or limit_tokens < self.tpm):
            logger.info(
                "%s: server reports %s tokens/min; adopting it", self.endpoint, limit_tokens
            )
            self.tpm = float(limit_tokens)
        if pause_s:
            now = self.clock()
            self.paused_until = max(self.paused_until, now + min(MAX_PAUSE_S, pause_s))
            self.tat = max(self.tat, self.paused_until)

    def set_fatal(self, error: BaseException) -> None:
        """Stop every worker: later leases raise ``error``."""
        if self.fatal is None:
            self.fatal = error

    def usage(self) -> LimiterUsage:
        return LimiterUsage(
            calls=self.calls,
            tokens=round(self.tokens),
            cost=self.cost,
            rate_limited=self.rate_limited,
            slots_granted=self.slots_granted,
            slowdowns=self.slowdowns,
        )


def _core_from_config(config, clock=time.monotonic) -> LimiterCore:
    return LimiterCore(
        rpm=config.rpm,
        tpm=config.tpm,
        margin=config.rate_margin,
        horizon_s=config.lease_horizon_s,
        endpoint=config.endpoint,
        max_calls=config.max_calls,
        max_total_tokens=config.max_total_tokens,
        max_cost=config.max_cost,
        clock=clock,
    )


def _clock_domain() -> str | None:
    """Who shares this process's ``time.monotonic``: every process of one kernel boot on one
    host (``None`` where that cannot be told, e.g. outside Linux)."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read().strip()
    except OSError:
        return None
    return f"{boot}@{socket.gethostname()}" if boot else None


CLOCK_DOMAIN = _clock_domain()


@dataclass(frozen=True)
class Grant:
    """Slots granted by one lease: ``delays`` (s) after ``granted_at`` on the limiter's
    monotonic clock, which a worker in the same ``clock_domain`` shares; any other worker
    places them from its own clock (see :meth:`LeaseClient._refill`)."""

    delays: list[float]
    granted_at: float
    clock_domain: str | None
    seconds_per_token: float = 0.0
    """What one token costs on the TPM clock now (0 without a TPM limit)."""


def _grant(core: LimiterCore, n, est_tokens, est_cost, settlements, rate_tokens):
    """One lease for a limiter front-end: ``("ok", Grant)`` or ``("error", EndpointError)``."""
    try:
        delays = core.lease(
            n,
            est_tokens=est_tokens,
            est_cost=est_cost,
            settlements=settlements,
            rate_tokens=rate_tokens,
        )
    except EndpointError as err:
        return ("error", err)
    domain = CLOCK_DOMAIN if core.clock is time.monotonic else None
    per_token = (
        SECONDS_PER_MINUTE / (core.tpm * core.rate_factor * (1.0 - core.margin))
        if core.tpm
        else 0.0
    )
    return ("ok", Grant(delays, core.last_lease_at, domain, per_token))


class LocalLimiter:
    """The limiter inside one process (no Ray), with the async interface of the actor."""

    def __init__(self, core: LimiterCore):
        self.core = core

    @classmethod
    def from_config(cls, config) -> LocalLimiter:
        return cls(_core_from_config(config))

    async def lease(self, n, est_tokens, est_cost, settlements, rate_tokens=None, ticket=None):
        return _grant(self.core, n, est_tokens, est_cost, settlements, rate_tokens)

    async def settle(self, settlements, ticket=None):
        self.core.settle(settlements)

    async def rate_limited(self, retry_after_s):
        self.core.rate_limited_by_server(retry_after_s)

    async def hint(self, limit_requests, limit_tokens, pause_s):
        self.core.server_hint(
            limit_requests=limit_requests, limit_tokens=limit_tokens, pause_s=pause_s
        )

    async def set_fatal(self, error):
        self.core.set_fatal(error)

    async def usage(self) -> LimiterUsage:
        return self.core.usage()


STATE_FILE_PREFIX = "izero-limiter-"
"""State files are ``<state_dir>/izero-limiter-<actor id>.json``."""


class _LimiterActorImpl:
    """Ray actor body: one per endpoint, named, shared by every worker process.

    ``state_dir``: a local folder for the state file that a restart of this actor reads back
    (``None``: no file; a restart then pauses, see :meth:`LimiterCore.pause_for_recovery`).
    """

    def __init__(self, config, state_dir: str | None = None):
        import ray

        self.core = _core_from_config(config)
        self.tickets = TicketBook()
        context = ray.get_runtime_context()
        self.file = (
            StateFile(Path(state_dir) / f"{STATE_FILE_PREFIX}{context.get_actor_id()}.json")
            if state_dir is not None
            else None
        )
        if context.was_current_actor_reconstructed:
            self._recover()
        self.restarted = bool(context.was_current_actor_reconstructed)

    def _recover(self) -> None:
        state = self.file.read() if self.file is not None else None
        if state is not None:
            age = restore(self.core, state["core"])
            self.tickets.load(state["tickets"], _decode_result)
            logger.warning(
                "%s: the shared limiter restarted; its clock and budget books were restored "
                "(state %.2fs old)",
                self.core.endpoint,
                age,
            )
            return
        pause = self.core.pause_for_recovery()
        logger.warning(
            "%s: the shared limiter restarted without its state; pausing %.1fs so that slots "
            "granted before do not bunch with new ones. Budget caps count from zero again.",
            self.core.endpoint,
            pause,
        )

    def _save(self) -> None:
        if self.file is not None:
            self.file.write(
                {"core": snapshot(self.core), "tickets": self.tickets.to_dict(_encode_result)}
            )

    def lease(self, n, est_tokens, est_cost, settlements, rate_tokens=None, ticket=None):
        again = self.tickets.grant(ticket)
        if again is not None:  # re-sent by Ray after a restart: the grant it already had
            return again
        self.tickets.seen(ticket)
        result = _grant(self.core, n, est_tokens, est_cost, settlements, rate_tokens)
        self.tickets.remember_grant(ticket, result)
        self._save()
        return result

    def settle(self, settlements, ticket=None):
        if self.tickets.seen(ticket):
            return
        self.core.settle(settlements)
        self._save()

    def rate_limited(self, retry_after_s):
        self.core.rate_limited_by_server(retry_after_s)
        self._save()

    def hint(self, limit_requests, limit_tokens, pause_s):
        self.core.server_hint(
            limit_requests=limit_requests, limit_tokens=limit_tokens, pause_s=pause_s
        )
        self._save()

    def set_fatal(self, error):
        self.core.set_fatal(error)
        self._save()

    def usage(self):
        return self.core.usage()

    def info(self) -> dict:
        """Where this actor runs and whether it is a restarted copy (for logs and tests)."""
        import os

        import ray

        return {
            "pid": os.getpid(),
            "node_id": ray.get_runtime_context().get_node_id(),
            "restarted": self.restarted,
            "state_file": None if self.file is None else str(self.file.path),
        }

    def forget(self) -> None:
        """Delete the state file and write it no more (the pool is closing for good; a late
        booking from a worker must not leave it behind)."""
        if self.file is not None:
            self.file.remove()
            self.file = None


def _encode_result(result) -> dict:
    status, payload = result
    if status == "error":
        from izero.blackbox.limiter_state import _error_to_dict

        return {"status": "error", "error": _error_to_dict(payload)}
    return {
        "status": "ok",
        "delays": list(payload.delays),
        "granted_wall": time.time() - (time.monotonic() - payload.granted_at),
    }


def _decode_result(data: dict):
    if data["status"] == "error":
        from izero.blackbox.limiter_state import _error_from_dict

        return ("error", _error_from_dict(data["error"]))
    granted_at = time.monotonic() - (time.time() - data["granted_wall"])
    return ("ok", Grant(data["delays"], granted_at, CLOCK_DOMAIN))


def create_limiter_actor(
    config,
    *,
    name: str | None = None,
    node_id: str | None = None,
    state_dir: str | Path | None = None,
):
    """Start the shared limiter actor for ``config`` (needs ``ray.init``); ``name`` makes it
    findable by other drivers with ``ray.get_actor``; ``node_id`` pins it to that node (its
    workers' node: slot times are then exact on their clock, and a restart finds its state
    file there; a soft preference let Ray place it on another node of a busy cluster);
    ``state_dir``: a folder on that node's disk where it keeps the state a restart reads back.

    Ray restarts the actor whenever its process dies and re-sends the calls in flight."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    actor_cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(_LimiterActorImpl)
    options: dict = {"name": name, "get_if_exists": True} if name else {}
    if node_id is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return actor_cls.options(**options).remote(
        config, None if state_dir is None else str(state_dir)
    )


class RemoteLimiter:
    """Async adapter over the Ray actor handle, same interface as :class:`LocalLimiter`."""

    def __init__(self, handle):
        self.handle = handle

    async def lease(self, n, est_tokens, est_cost, settlements, rate_tokens=None, ticket=None):
        return await self.handle.lease.remote(
            n, est_tokens, est_cost, settlements, rate_tokens, ticket
        )

    async def settle(self, settlements, ticket=None):
        await self.handle.settle.remote(settlements, ticket)

    async def rate_limited(self, retry_after_s):
        await self.handle.rate_limited.remote(retry_after_s)

    async def hint(self, limit_requests, limit_tokens, pause_s):
        await self.handle.hint.remote(limit_requests, limit_tokens, pause_s)

    async def set_fatal(self, error):
        await self.handle.set_fatal.remote(error)

    async def usage(self) -> LimiterUsage:
        return await self.handle.usage.remote()


@dataclass
class Slot:
    """One leased request slot: its budget reservation, to be settled exactly once."""

    est_tokens: float
    est_cost: float
    rate_tokens: float
    settled: bool = False
    call_tokens: float = 0.0
    """The estimate of the call that took the slot (its own, not the asking call's)."""


SETTLE_FLUSH_S = 0.05
DEFAULT_LATE_TOLERANCE_S = 0.01
"""A slot reached later than this (seconds) is void: a late send bunches with the next ones
(e.g. after the event loop stalled). With slots ``1 / (r (1 - margin))`` apart, sends late by
at most ``tau`` put at most ``floor(r (1 - margin) (W + tau)) + 1`` requests in a window of
``W`` seconds; 10 ms (half the 2% margin of a 1 s window) keeps that within ``floor(r W)``
from 60 to 10,000 RPM."""
MAX_EXPIRED_SLOTS = 8
"""After this many void slots in a row a call goes on the next one regardless (no livelock
under a persistently lagging loop; the server's 429 then slows everybody down)."""
BUDGET_WAIT_S = 0.1
"""Wait before asking again while the budget caps are held by other workers' reservations, or
while the slots granted already reach :meth:`LimiterCore.max_lead_s` ahead."""
STALE_GRACE_S = 0.05
"""After a lease's last slot (plus the late tolerance and this), its unused slots are refunded:
an idle worker must not hold budget another worker could spend."""
USAGE_EWMA_WEIGHT = 0.2
"""Weight of the newest paid call in a worker's running ratio of used to estimated tokens. The
TPM clock is charged the asking call's estimate times that ratio per slot: the calls that take
a lease's slots are mostly its neighbours (the examples of one instruction, one task), so its
estimate predicts theirs; the limiter settles the difference both ways."""


class LeaseClient:
    """A worker process's view of the shared limiter.

    :meth:`acquire` waits for this worker's next evenly spaced slot; leases are fetched in
    chunks as demand needs them and never more than ``horizon_s`` ahead. :meth:`release`
    books what the slot cost (batched to the limiter). :meth:`on_rate_limited` drops this
    worker's remaining slots and tells the limiter to pause everyone.
    """

    def __init__(
        self, limiter, *, horizon_s: float, late_tolerance_s: float = DEFAULT_LATE_TOLERANCE_S
    ):
        self.limiter = limiter
        self.horizon_s = horizon_s
        self.late_tolerance_s = late_tolerance_s
        self.expired_slots = 0
        self._slots: collections.deque[float] = collections.deque()
        self._lock = asyncio.Lock()
        self._demand = 0
        self._last_slot = 0.0
        self._pending: list[Settlement] = []
        self._flush_task: asyncio.Task | None = None
        self._reserved_local: collections.deque[tuple[float, float, float]] = collections.deque()
        self.fatal: BaseException | None = None
        self._usage_ratio = 1.0
        self._seconds_per_token = 0.0
        self._paused_until = 0.0  # monotonic; slots before it are void
        self.client_id = uuid.uuid4().hex
        self._seq = 0

    def _ticket(self) -> tuple[str, int]:
        """A fresh ``(client id, sequence number)``: the limiter books each ticket once."""
        self._seq += 1
        return (self.client_id, self._seq)

    def _rate_tokens(self, est_tokens: float) -> float:
        """Tokens the TPM clock is charged per slot (see :data:`USAGE_EWMA_WEIGHT`)."""
        return est_tokens * self._usage_ratio

    async def acquire(self, *, est_tokens: float, est_cost: float) -> Slot:
        """Wait for a slot for one call of about ``est_tokens`` tokens and ``est_cost``."""
        if self.fatal is not None:
            raise self.fatal
        expired = 0
        while True:
            self._demand += 1
            try:
                async with self._lock:
                    while not self._slots:
                        await self._refill(est_tokens, est_cost)
                    when = self._slots.popleft()
                    slot = Slot(*self._reserved_local.popleft(), call_tokens=est_tokens)
            finally:
                self._demand -= 1
            delay = when - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if self.fatal is not None:
                self.release(slot, sent=False, paid=False)
                raise self.fatal
            if when < self._paused_until:
                # a 429 or a pause covering this slot arrived while waiting: take a new one
                self.release(slot, sent=False, paid=False)
                continue
            late = time.monotonic() - when
            if late > self.late_tolerance_s and expired < MAX_EXPIRED_SLOTS:
                # the loop woke too late: sending now would bunch with the next slots and
                # break a short server window; this slot's capacity is gone, take a new one
                expired += 1
                self.expired_slots += 1
                self.release(slot, sent=False, paid=False)
                continue
            self._charge_the_call(slot, est_tokens)
            return slot

    def _charge_the_call(self, slot: Slot, est_tokens: float) -> None:
        """Charge the TPM clock what the call that took ``slot`` is expected to use (the lease
        charged its asking call's): a larger call moves this worker's later slots (and the
        shared clock) later at once, instead of once its answer is settled; a smaller one
        leaves the difference as credit."""
        predicted = self._rate_tokens(est_tokens)
        delta = predicted - slot.rate_tokens
        if not self._seconds_per_token or abs(delta) < 1e-9:
            return
        slot.rate_tokens = predicted
        self._pending.append(Settlement(0.0, delta, 0.0, 0.0, True, False, adjust=True))
        if delta > 0:
            shift = delta * self._seconds_per_token
            self._slots = collections.deque(t + shift for t in self._slots)
            if self._slots:
                self._last_slot = self._slots[-1]
        self._schedule_flush()

    async def _refill(self, est_tokens: float, est_cost: float) -> None:
        ahead = self._last_slot - time.monotonic() - self.horizon_s
        if ahead > 0:
            await asyncio.sleep(ahead)
        pending, self._pending = self._pending, []
        rate_tokens = self._rate_tokens(est_tokens)
        asked_at = time.monotonic()
        status, payload = await self.limiter.lease(
            max(1, self._demand), est_tokens, est_cost, pending, rate_tokens, self._ticket()
        )
        if status == "error":
            self.fatal = payload
            raise payload
        self._seconds_per_token = payload.seconds_per_token
        if payload.clock_domain is not None and payload.clock_domain == CLOCK_DOMAIN:
            # same host and boot: the limiter's slot times are exact on our clock, so workers
            # whose round trips differ still send in the order and spacing it granted
            start = payload.granted_at
        else:
            # another host: the grant happened about half a round trip ago
            start = (asked_at + time.monotonic()) / 2.0
        for delay in payload.delays:
            self._slots.append(start + delay)
            self._reserved_local.append((est_tokens, est_cost, rate_tokens))
        if not payload.delays:  # budget held by reservations elsewhere, or slots far enough ahead
            await asyncio.sleep(BUDGET_WAIT_S)
            return
        self._last_slot = start + payload.delays[-1]
        expire_in = self._last_slot - time.monotonic() + self.late_tolerance_s + STALE_GRACE_S
        asyncio.get_running_loop().call_later(max(0.0, expire_in), self._refund_stale)

    def _refund_stale(self) -> None:
        """Refund slots too late to be used (nobody took them in time) and book it soon."""
        if self._refund_before(time.monotonic() - self.late_tolerance_s):
            self._schedule_flush()

    def release(
        self, slot: Slot, *, sent: bool, paid: bool, tokens: float = 0.0, cost: float = 0.0
    ) -> None:
        """Book the slot: ``sent`` a request on it, ``paid`` (answered) with this usage."""
        if slot.settled:
            return
        slot.settled = True
        actual_tokens = tokens if paid else (slot.rate_tokens if sent else 0.0)
        if paid and slot.call_tokens > 0:
            sample = tokens / slot.call_tokens
            self._usage_ratio += USAGE_EWMA_WEIGHT * (sample - self._usage_ratio)
        self._pending.append(
            Settlement(
                slot.est_tokens, actual_tokens, slot.est_cost, cost, sent, paid, slot.rate_tokens
            )
        )
        self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(SETTLE_FLUSH_S)
        await self.flush()

    async def flush(self) -> None:
        """Send booked settlements to the limiter now."""
        pending, self._pending = self._pending, []
        if pending:
            await self.limiter.settle(pending, self._ticket())

    async def close(self) -> None:
        """Refund unused slots and send every booking (call before the event loop ends)."""
        self._drop_slots(MAX_PAUSE_S)
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
        await self.flush()

    def _drop_slots(self, pause_s: float) -> int:
        """Void this worker's slots that fall inside a pause of ``pause_s`` seconds from now
        (refunding their reservations); later slots stay valid."""
        until = time.monotonic() + min(MAX_PAUSE_S, pause_s)
        self._paused_until = max(self._paused_until, until)
        return self._refund_before(self._paused_until)

    def _refund_before(self, when: float) -> int:
        """Drop this worker's slots due before ``when``, booking their reservations back."""
        dropped = 0
        while self._slots and self._slots[0] < when:
            self._slots.popleft()
            tokens, cost, _ = self._reserved_local.popleft()
            self._pending.append(Settlement(tokens, 0.0, cost, 0.0, False, False))
            dropped += 1
        if not self._slots:
            self._last_slot = 0.0
        return dropped

    async def on_rate_limited(self, retry_after_s: float | None) -> None:
        """A 429 came back: void local slots inside the pause and pause every worker."""
        pause = DEFAULT_PAUSE_S if retry_after_s is None else retry_after_s
        dropped = self._drop_slots(pause)
        if dropped:
            logger.debug("voided %d leased slots inside a %.3fs pause after a 429", dropped, pause)
        await self.limiter.rate_limited(pause)

    async def on_hint(self, limit_requests, limit_tokens, pause_s) -> None:
        """Forward what the server's ``x-ratelimit-*`` headers said."""
        if pause_s:
            self._drop_slots(pause_s)
        await self.limiter.hint(limit_requests, limit_tokens, pause_s)

    async def stop_all(self, error: BaseException) -> None:
        """A fatal error: stop this worker at once and every other at its next lease."""
        self.fatal = error
        await self.limiter.set_fatal(error)
