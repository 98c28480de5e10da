"""What the shared limiter must not forget when its Ray actor restarts.

The limiter actor is the one place that knows when the next request may go out (its rate clock)
and what has been spent (the budget). When its process dies (killed, out of memory) Ray restarts
it; a fresh clock would hand out slots from "now" while slots granted before the crash are still
being sent, a burst the server answers with 429s, and fresh budget counters would let a sweep
spend its ``max_cost`` twice. So the actor keeps a small state file next to it:

- :func:`snapshot` / :func:`restore`: the clock, the 429 back-off and the budget books of a
  :class:`~izero.blackbox.ratelimit.LimiterCore` as JSON. Times are stored as offsets from the
  moment of the snapshot and brought back through the wall clock, so a restart on another host
  (another monotonic clock) still places them right.
- :class:`TicketBook`: Ray re-sends the calls that were in flight when the actor died (at least
  once), so every call that changes the books carries a ticket ``(client id, sequence number)``;
  a call seen before is not booked again, and a repeated lease gets the grant it already had.
- :class:`StateFile`: written (atomically) after every call that changed something, before
  the answer leaves the actor; so every grant a worker ever received is in the file.

Without a file (none given, or the actor came back on a host that does not have it) a
restarted limiter pauses for the longest lead a grant can have (see
:meth:`LimiterCore.max_lead_s`) before granting again, and says that its budget counters
start from zero.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

STATE_VERSION = 1
#: Tickets remembered per client for settlements (a client has a few calls in flight at most).
SEEN_TICKETS_PER_CLIENT = 256
#: Clock fields of ``LimiterCore``, stored as offsets from the snapshot's moment.
_TIME_FIELDS = ("tat", "paused_until", "_factor_at", "_last_429_at", "last_lease_at", "_debt_at")
#: Plain fields of ``LimiterCore``.
_VALUE_FIELDS = (
    "rpm",
    "tpm",
    "rate_factor",
    "ceiling",
    "limits_stated",
    "_token_debt",
    "_episode_429s",
    "_last_gap",
    "calls",
    "tokens",
    "cost",
    "res_calls",
    "res_tokens",
    "res_cost",
    "rate_limited",
    "slowdowns",
    "slots_granted",
)


def snapshot(core: Any, *, mono_now: float | None = None, wall_now: float | None = None) -> dict:
    """The state of ``core`` (a ``LimiterCore``) as a JSON-safe dict."""
    mono = core.clock() if mono_now is None else mono_now
    state: dict[str, Any] = {
        "version": STATE_VERSION,
        "wall": time.time() if wall_now is None else wall_now,
        "values": {name: getattr(core, name) for name in _VALUE_FIELDS},
        "offsets": {name: _offset(getattr(core, name), mono) for name in _TIME_FIELDS},
        "fatal": _error_to_dict(core.fatal),
    }
    return state


def restore(core: Any, state: Mapping[str, Any], *, wall_now: float | None = None) -> float:
    """Put ``state`` (from :func:`snapshot`) back into ``core``; returns its age in seconds."""
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"limiter state version {state.get('version')!r} is not supported")
    age = max(0.0, (time.time() if wall_now is None else wall_now) - float(state["wall"]))
    mono = core.clock()
    for name, value in state["values"].items():
        if name in _VALUE_FIELDS:
            setattr(core, name, value)
    for name, offset in state["offsets"].items():
        if name in _TIME_FIELDS:
            setattr(core, name, -float("inf") if offset is None else mono + offset - age)
    core.fatal = _error_from_dict(state.get("fatal"))
    return age


def _offset(t: float, mono: float) -> float | None:
    return None if t == -float("inf") else t - mono


def _error_to_dict(err: BaseException | None) -> dict | None:
    if err is None:
        return None
    return {
        "type": type(err).__name__,
        "text": str(err),
        "endpoint": getattr(err, "endpoint", ""),
        "status": getattr(err, "status", None),
        "fix": getattr(err, "fix", ""),
    }


def _error_from_dict(data: Mapping[str, Any] | None) -> BaseException | None:
    if not data:
        return None
    from izero.blackbox import errors

    cls = getattr(errors, str(data.get("type")), errors.EndpointError)
    if not (isinstance(cls, type) and issubclass(cls, errors.EndpointError)):
        cls = errors.EndpointError
    return errors._rebuild(cls, data["text"], data["endpoint"], data["status"], data["fix"])


class TicketBook:
    """Which booking calls the limiter has already applied, per client.

    ``seen(ticket)``: whether a settlement call with this ticket was applied before (and marks it
    applied). ``grant(ticket)``: the grant a lease with this ticket already got, if any;
    ``remember_grant`` stores it (one per client: a client has one lease in flight at most).
    """

    def __init__(self) -> None:
        self._seen: dict[str, collections.deque[int]] = {}
        self._grants: dict[str, tuple[int, Any]] = {}

    def seen(self, ticket: tuple[str, int] | None) -> bool:
        if ticket is None:
            return False
        client, seq = ticket
        done = self._seen.setdefault(client, collections.deque(maxlen=SEEN_TICKETS_PER_CLIENT))
        if seq in done:
            return True
        done.append(seq)
        return False

    def grant(self, ticket: tuple[str, int] | None) -> Any | None:
        if ticket is None:
            return None
        client, seq = ticket
        last = self._grants.get(client)
        return last[1] if last is not None and last[0] == seq else None

    def remember_grant(self, ticket: tuple[str, int] | None, result: Any) -> None:
        if ticket is not None:
            self._grants[ticket[0]] = (ticket[1], result)

    def to_dict(self, encode_grant) -> dict:
        return {
            "seen": {c: list(d) for c, d in self._seen.items()},
            "grants": {c: [seq, encode_grant(g)] for c, (seq, g) in self._grants.items()},
        }

    def load(self, data: Mapping[str, Any], decode_grant) -> None:
        self._seen = {
            c: collections.deque(seqs, maxlen=SEEN_TICKETS_PER_CLIENT)
            for c, seqs in data.get("seen", {}).items()
        }
        self._grants = {c: (seq, decode_grant(g)) for c, (seq, g) in data.get("grants", {}).items()}


class StateFile:
    """A JSON file replaced atomically on every write (``path`` on the limiter's local disk)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def read(self) -> dict | None:
        try:
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            logger.warning("limiter state file %s is unreadable (%s); ignoring it", self.path, err)
            return None

    def write(self, state: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(state, f, separators=(",", ":"))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        for p in (self.path, self.path.with_name(self.path.name + ".tmp")):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
