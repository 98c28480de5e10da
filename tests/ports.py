"""Ports for servers that tests stop and start again, or that must stay closed.

A port the OS handed out (bind to port 0) and that is then closed goes back to the ephemeral
range, where the next process binding port 0 may get it: a Ray worker's gRPC server started in
the meantime answered a test's "closed" port with HTTP/2 bytes. Ports below the ephemeral range
(Linux: 32768 and up) and above Ray's worker ports (10002-19999) are never handed out that way.
"""

from __future__ import annotations

import random
import socket

QUIET_PORTS = range(20_000, 32_000)


def quiet_port() -> int:
    """A free port on 127.0.0.1 that no other process is given by the OS while it is closed."""
    rng = random.Random()
    for _ in range(200):
        port = rng.choice(QUIET_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {QUIET_PORTS}")
