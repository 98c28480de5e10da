"""Endpoint health: tell an endpoint that is down from a few transient faults.

A few failed attempts (a 503 here, a dropped connection there) are retried by the client. An
endpoint that fails *every* attempt (connection refused, timeouts, 5xx) is down: retrying each
call on its own would burn every call's retries within seconds and record the evaluations as
failed. Instead, :class:`HealthCore` declares an **outage** once the last
:data:`DEFAULT_TRIP_FAILURES` attempts failed that way and nothing was answered for
:data:`DEFAULT_TRIP_WINDOW_S` seconds. During an outage every worker holds its calls (they keep
their retries), and one attempt at a time is let through as a **probe**, with exponential
backoff. The first answer ends the outage and every held call goes on. If none comes within the
outage allowance, the core keeps a fatal :class:`EndpointUnavailableError` (one line naming the
endpoint, what failed and the fix) that every held call raises, which stops the sweep; a resumed
sweep takes the answers already paid for from the response cache.

:class:`HealthCore` is the pure logic (injectable clock); :class:`LocalHealth` serves it inside
one process, :func:`create_health_actor` to every worker process of a pool (a Ray actor), and
:class:`HealthClient` is what one worker process uses.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from izero.blackbox.errors import EndpointError

logger = logging.getLogger(__name__)

DEFAULT_OUTAGE_ALLOWANCE_S = 600.0
"""How long a sweep waits for an endpoint that answers nothing before it stops (seconds)."""
DEFAULT_TRIP_FAILURES = 5
"""Consecutive failed attempts (connection errors, timeouts, 5xx) that can mean an outage."""
DEFAULT_TRIP_WINDOW_S = 1.0
"""...provided nothing was answered for this long (seconds): reports of several workers
interleave (answers are reported every :data:`REPORT_FLUSH_S`), so a streak alone could hide
answers another worker got meanwhile."""
PROBE_BASE_S = 1.0
"""Wait before the first probe of an outage; it doubles after each failed probe."""
PROBE_CAP_S = 30.0
"""Longest wait between two probes (seconds)."""
PROBE_GRACE_S = 10.0
"""A probe not reported within the request timeout plus this is presumed lost (its worker
died or the call was cancelled before it was sent), and the next one is let through."""
POLL_CAP_S = 1.0
"""Longest a held call sleeps before asking again (another worker's probe may have ended the
outage meanwhile)."""
REPORT_FLUSH_S = 0.5
"""Answers are reported in batches this often; failures are reported at once."""
VERDICT_WAIT_S = DEFAULT_TRIP_WINDOW_S + REPORT_FLUSH_S + 0.5
"""Before a call gives up after its last retry failed like an outage, it waits this long to
learn whether an outage has been declared meanwhile (then it is held and keeps its retries)."""
_STATUS_KINDS = frozenset({"408", *(str(code) for code in range(500, 600))})
OUTAGE_KINDS = frozenset({"connection", "timeout", "truncated"}) | _STATUS_KINDS
"""Attempt failures that say the endpoint may be down. A 429, a 4xx, or a malformed body all
mean that a server answered: they reset the streak."""
ANSWERED = "ok"
"""The outcome of an attempt the endpoint answered (anything not in :data:`OUTAGE_KINDS`)."""
UNSENT = "unsent"
"""The outcome of a probe permit whose attempt was never sent: the next probe may go at once."""

_KIND_NAMES = {
    "connection": "connection errors",
    "timeout": "timeouts",
    "truncated": "dropped connections",
}


class EndpointUnavailableError(EndpointError):
    """The endpoint answered nothing for longer than the outage allowance."""


@dataclass(frozen=True)
class HealthView:
    """What a worker (or the progress line) knows of the endpoint's health.

    ``outage``: an outage is on; ``epoch``: outages declared so far; ``since_s``: seconds the
    outage has lasted; ``silent_s``: seconds since the endpoint last answered; ``failures``:
    failed attempts since the last answer, by kind; ``allowance_left_s``: seconds before the
    sweep gives up; ``next_probe_s``: seconds to the next probe (0 while one is on its way).
    """

    outage: bool = False
    epoch: int = 0
    since_s: float = 0.0
    silent_s: float = 0.0
    failures: tuple[tuple[str, int], ...] = ()
    allowance_left_s: float = 0.0
    next_probe_s: float = 0.0
    endpoint: str = ""

    def line(self) -> str:
        """One line for the progress display ("" when the endpoint is healthy)."""
        if not self.outage:
            return ""
        return (
            f"OUTAGE {self.endpoint}: nothing answered for {_duration(self.silent_s)} "
            f"({describe_failures(self.failures)}); calls held, probing again in "
            f"{self.next_probe_s:.0f}s, giving up in {_duration(self.allowance_left_s)}"
        )


def describe_failures(failures: Sequence[tuple[str, int]]) -> str:
    """``(("connection", 40), ("503", 2))`` -> ``"40 connection errors, 2 HTTP 503"``."""
    parts = [
        f"{n} {_KIND_NAMES.get(kind, f'HTTP {kind}' if kind.isdigit() else kind)}"
        for kind, n in sorted(failures, key=lambda item: -item[1])
    ]
    return ", ".join(parts) or "no attempt reported"


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m{secs:02d}s"


class HealthCore:
    """Outage state of one endpoint.

    Args:
        endpoint: how errors name the endpoint (``EndpointConfig.endpoint``).
        allowance_s: seconds an outage may last before the sweep stops.
        probe_timeout_s: seconds after which a probe that was never reported counts as failed.
        trip_failures, trip_window_s: see :data:`DEFAULT_TRIP_FAILURES`.
        clock: monotonic seconds.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        allowance_s: float = DEFAULT_OUTAGE_ALLOWANCE_S,
        probe_timeout_s: float = 60.0 + PROBE_GRACE_S,
        trip_failures: int = DEFAULT_TRIP_FAILURES,
        trip_window_s: float = DEFAULT_TRIP_WINDOW_S,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.endpoint = endpoint
        self.allowance_s = allowance_s
        self.probe_timeout_s = probe_timeout_s
        self.trip_failures = trip_failures
        self.trip_window_s = trip_window_s
        self.clock = clock
        self.last_answer = clock()
        self.streak = 0
        self.failures: collections.Counter[str] = collections.Counter()
        self.outage_since: float | None = None
        self.epoch = 0
        self.next_probe_at = 0.0
        self.probe_until: float | None = None  # a probe is on its way until then
        self.probes_failed = 0
        self.fatal: EndpointUnavailableError | None = None

    # -- what workers report ----------------------------------------------------------------
    def observe(self, outcomes: Sequence[tuple[str, bool]]) -> None:
        """Book attempt outcomes ``(kind, was_probe)``; ``kind`` is :data:`ANSWERED` or a
        failure kind (``"connection"``, ``"timeout"``, ``"503"``, ...)."""
        for kind, probe in outcomes:
            now = self.clock()
            if kind == UNSENT:
                if probe and self.outage_since is not None:
                    self.probe_until = None
                continue
            if kind not in OUTAGE_KINDS:
                self._answered(now)
                continue
            self.failures[kind] += 1
            if self.outage_since is None:
                self.streak += 1
                self._maybe_trip(now)
            elif probe:
                self._probe_failed(now)

    def _answered(self, now: float) -> None:
        self.last_answer = now
        self.streak = 0
        self.failures.clear()
        if self.outage_since is not None and self.fatal is None:
            logger.warning(
                "%s answers again after %.0fs; held calls go on",
                self.endpoint,
                now - self.outage_since,
            )
            self.outage_since = None
            self.probe_until = None

    def _maybe_trip(self, now: float) -> None:
        """Declare the outage once the streak is long and old enough (also checked when asked,
        so a streak whose calls all gave up still trips)."""
        if (
            self.outage_since is None
            and self.streak >= self.trip_failures
            and now - self.last_answer >= self.trip_window_s
        ):
            self._trip(now)

    def _trip(self, now: float) -> None:
        self.outage_since = now
        self.epoch += 1
        self.probes_failed = 0
        self.next_probe_at = now + PROBE_BASE_S
        self.probe_until = None
        logger.warning(
            "%s looks down: the last %d attempts failed (%s) and nothing was answered for "
            "%.1fs; holding every call and probing with backoff for up to %.0fs",
            self.endpoint,
            self.streak,
            describe_failures(tuple(self.failures.items())),
            now - self.last_answer,
            self.allowance_s,
        )

    def _probe_failed(self, now: float) -> None:
        assert self.outage_since is not None
        self.probe_until = None
        self.probes_failed += 1
        deadline = self.outage_since + self.allowance_s
        if now >= deadline:
            self._give_up(now)
            return
        wait = min(PROBE_CAP_S, PROBE_BASE_S * 2.0**self.probes_failed)
        self.next_probe_at = min(now + wait, deadline)

    def _give_up(self, now: float) -> None:
        assert self.outage_since is not None
        if self.fatal is not None:
            return
        waited = now - self.outage_since
        self.fatal = EndpointUnavailableError(
            f"the endpoint answered nothing for {_duration(now - self.last_answer)} "
            f"({describe_failures(tuple(self.failures.items()))}); izero held every call and "
            f"probed it {self.probes_failed} times over {waited:.0f}s, the outage allowance",
            endpoint=self.endpoint,
            fix="check that the server is up and that base_url is right, then resume the "
            "sweep (answers already paid for are cached); to wait longer for an endpoint "
            "that comes back, raise blackbox.outage_allowance_s",
        )
        logger.error("%s", self.fatal)

    # -- what held calls ask -----------------------------------------------------------------
    def permit(self) -> tuple[str, float]:
        """``("go", 0)``: no outage; ``("probe", 0)``: send one attempt as the probe;
        ``("wait", s)``: ask again in ``s`` seconds. Raises the fatal error once given up."""
        if self.fatal is not None:
            raise self.fatal
        now = self.clock()
        self._maybe_trip(now)
        if self.outage_since is None:
            return ("go", 0.0)
        if self.probe_until is not None:
            if now < self.probe_until:
                return ("wait", min(POLL_CAP_S, self.probe_until - now))
            logger.warning("%s: a probe was never reported; presuming it failed", self.endpoint)
            self._probe_failed(now)
            if self.fatal is not None:
                raise self.fatal
        if now >= self.next_probe_at:
            self.probe_until = now + self.probe_timeout_s
            return ("probe", 0.0)
        return ("wait", min(self.next_probe_at - now, POLL_CAP_S))

    def view(self) -> HealthView:
        now = self.clock()
        self._maybe_trip(now)
        if self.outage_since is None:
            return HealthView(epoch=self.epoch, endpoint=self.endpoint)
        next_probe = 0.0 if self.probe_until is not None else max(0.0, self.next_probe_at - now)
        return HealthView(
            outage=True,
            epoch=self.epoch,
            since_s=now - self.outage_since,
            silent_s=now - self.last_answer,
            failures=tuple(sorted(self.failures.items())),
            allowance_left_s=max(0.0, self.outage_since + self.allowance_s - now),
            next_probe_s=next_probe,
            endpoint=self.endpoint,
        )


def _core_from_config(config) -> HealthCore:
    return HealthCore(
        endpoint=config.endpoint,
        allowance_s=config.outage_allowance_s,
        probe_timeout_s=config.timeout_s + PROBE_GRACE_S,
    )


class LocalHealth:
    """The health core inside one process, with the async interface of the actor."""

    def __init__(self, core: HealthCore):
        self.core = core

    @classmethod
    def from_config(cls, config) -> LocalHealth:
        return cls(_core_from_config(config))

    async def report(self, outcomes):
        self.core.observe(outcomes)
        return _answer(self.core, None)

    async def permit(self):
        return _answer(self.core, "permit")

    async def view(self) -> HealthView:
        return self.core.view()


def _answer(core: HealthCore, ask: str | None):
    """``("ok", (decision, wait, view))`` or ``("error", fatal)``: errors travel as values."""
    try:
        decision = core.permit() if ask else ("go", 0.0)
    except EndpointUnavailableError as err:
        return ("error", err)
    if core.fatal is not None:
        return ("error", core.fatal)
    return ("ok", (*decision, core.view()))


class _HealthActorImpl:
    """Ray actor body: one per endpoint, shared by every worker process of a pool."""

    def __init__(self, config):
        self.core = _core_from_config(config)

    def report(self, outcomes):
        self.core.observe(outcomes)
        return _answer(self.core, None)

    def permit(self):
        return _answer(self.core, "permit")

    def view(self) -> HealthView:
        return self.core.view()


def create_health_actor(config, *, node_id: str | None = None):
    """Start the shared health actor of ``config``'s endpoint (needs ``ray.init``)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # its state is soft: a restarted actor starts healthy and learns an outage again from the
    # next failures, so Ray may restart it and re-send the calls in flight
    actor_cls = ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1)(_HealthActorImpl)
    options: dict = {}
    if node_id is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
    return actor_cls.options(**options).remote(config)


class RemoteHealth:
    """Async adapter over the health actor's handle, same interface as :class:`LocalHealth`."""

    def __init__(self, handle):
        self.handle = handle

    async def report(self, outcomes):
        return await self.handle.report.remote(outcomes)

    async def permit(self):
        return await self.handle.permit.remote()

    async def view(self) -> HealthView:
        return await self.handle.view.remote()


class HealthClient:
    """One worker process's view of the endpoint's health.

    :meth:`ready` is awaited before every attempt: at once while the endpoint is healthy; during
    an outage it holds the call until the endpoint answers again (returning True for the one
    attempt chosen as the probe) or raises :class:`EndpointUnavailableError` when the
    allowance has run out. :meth:`record` reports each attempt's outcome.
    """

    def __init__(self, backend):
        self.backend = backend
        self.view = HealthView()
        self.fatal: BaseException | None = None
        self._pending: list[tuple[str, bool]] = []
        self._flush_task: asyncio.Task | None = None
        self._flush_now = asyncio.Event()
        self._poll = asyncio.Lock()
        self._outage_seen_at = -float("inf")  # monotonic: when an outage was last known on

    def outage_seen_since(self, when: float) -> bool:
        """Whether an outage was on at some moment after ``when`` (monotonic seconds): a
        failed attempt sent then is the outage's, not its call's."""
        return self._outage_seen_at >= when

    async def ready(self) -> bool:
        """Wait until an attempt may be sent; True if it is the probe of an outage."""
        while True:
            if self.fatal is not None:
                raise self.fatal
            if not self.view.outage:
                return False
            async with self._poll:  # one held call per process asks; the others queue here
                if self.fatal is not None:
                    raise self.fatal
                if not self.view.outage:
                    return False
                decision, wait = await self._ask()
                if decision == "go":
                    return False
                if decision == "probe":
                    return True
                await asyncio.sleep(wait)

    async def _ask(self) -> tuple[str, float]:
        status, payload = await self.backend.permit()
        if status == "error":
            self._fail(payload)
        decision, wait, view = payload
        self._apply(view)
        return decision, wait

    async def verdict(self) -> None:
        """Wait :data:`VERDICT_WAIT_S` and learn whether an outage was declared meanwhile."""
        await asyncio.sleep(VERDICT_WAIT_S)
        await self.flush()
        self._apply(await self.backend.view())

    def _apply(self, view: HealthView) -> None:
        # a new epoch: an outage was declared since the last view, even if it is over by now
        # (declared and ended while this process's calls waited to ask): it was on after them
        if view.outage or self.view.outage or view.epoch != self.view.epoch:
            self._outage_seen_at = time.monotonic()
        self.view = view

    def _fail(self, error: BaseException) -> None:
        self.fatal = error
        raise error

    def record(self, kind: str, *, probe: bool = False) -> None:
        """Report one attempt's outcome (:data:`ANSWERED`, :data:`UNSENT` or its failure
        kind); failures and probes are sent at once, answers in batches."""
        self._pending.append((kind, probe))
        if probe or kind in OUTAGE_KINDS:
            self._flush_now.set()
        if self._flush_task is None or self._flush_task.done():
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while self._pending:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), REPORT_FLUSH_S)
            self._flush_now.clear()
            await self.flush()

    async def flush(self) -> None:
        """Send the outcomes recorded so far and adopt the answer."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        try:
            status, payload = await self.backend.report(pending)
        except Exception as err:  # the shared health actor is gone: scoring goes on without
            logger.warning("endpoint health report failed (%s); outcomes dropped", err)
            return
        if status == "error":
            self.fatal = payload
            return
        self._apply(payload[2])

    def close(self, error: BaseException) -> None:
        """Stop: held calls and later ones raise ``error``."""
        if self.fatal is None:
            self.fatal = error
        if self._flush_task is not None and not self._flush_task.done():
            self._flush_task.cancel()
