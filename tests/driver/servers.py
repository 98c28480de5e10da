"""A simulated endpoint for driver tests that remembers which requests it answered.

A request answered twice (the same model, messages and parameters) is one call paid twice:
:meth:`CountingServer.answered` lets a test count that at the server, across sweeps that are
interrupted and resumed, while the server outlives them. It can be stopped (a closed port: the
endpoint is down) and started again on the same port.
"""

from __future__ import annotations

import collections
import hashlib
import json
import threading

from aiohttp import web

from izero.blackbox.simulated import SimulatedOptions, SimulatedServer, _App
from tests.ports import quiet_port


def digest(body: dict) -> str:
    blob = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _CountingApp(_App):
    def __init__(self, *args, answered: list[str], lock: threading.Lock):
        super().__init__(*args)
        self._answered = answered
        self._lock = lock

    async def chat(self, request: web.Request) -> web.StreamResponse:
        response = await super().chat(request)
        if response.status == 200:
            key = digest(await request.json())
            with self._lock:
                self._answered.append(key)
        return response


class CountingServer(SimulatedServer):
    """A :class:`SimulatedServer` (served from a thread) that keeps the digest of every request
    it answered, in order, across :meth:`stop` and :meth:`start` (on the same port)."""

    def __init__(self, tasks, *, options: SimulatedOptions, port: int | None = None):
        # a quiet port: while it is stopped, no other process (a Ray worker) can be given it
        super().__init__(tasks, options=options, port=quiet_port() if port is None else port)
        self.answered_keys: list[str] = []
        self._lock = threading.Lock()

    def _make_app(self) -> _App:
        app = super()._make_app()
        return _CountingApp(app.model, app.options, answered=self.answered_keys, lock=self._lock)

    def answered(self) -> list[str]:
        with self._lock:
            return list(self.answered_keys)

    def restart(self) -> str:
        """Start again on the port it had (the endpoint comes back)."""
        self.start()
        return self.base_url or ""


def paid_twice(keys: list[str]) -> int:
    """Answers beyond the first for each request."""
    return sum(n - 1 for n in collections.Counter(keys).values() if n > 1)
