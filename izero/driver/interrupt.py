"""Stopping a sweep on SIGINT (Ctrl-C) or SIGTERM without losing or repaying anything.

The first signal stops the sweep cleanly: its runs are cancelled at their next await, nothing
new is sent, and the scoring pool lets the requests already on their way come back into the
response cache before it closes (``ChatClient.close``). Then :class:`SweepInterrupted` tells
the caller, which prints the command that resumes. A second signal while those answers are
awaited stops waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Iterator

from izero.errors import IZeroError

logger = logging.getLogger(__name__)

#: Signals that stop a sweep cleanly (answers on their way are kept).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SweepInterrupted(IZeroError):
    """A sweep stopped by SIGINT (Ctrl-C) or SIGTERM after it kept what was paid for.

    ``signal_name``: ``"SIGINT"`` or ``"SIGTERM"``; ``recorded``: whether anything of the sweep
    is in its results (if not, nothing was left behind and the same command starts afresh).
    """

    def __init__(self, signal_name: str, *, recorded: bool):
        self.signal_name = signal_name
        self.recorded = recorded
        kept = (
            "answers already paid for are in the response cache and every finished round in "
            "the results"
            if recorded
            else "nothing had been recorded, so nothing was kept"
        )
        super().__init__(f"interrupted by {signal_name}; {kept}")


@contextlib.contextmanager
def stop_signals() -> Iterator[list[str]]:
    """Turn SIGTERM into the same clean stop as SIGINT while a sweep runs (main thread only).

    Yields a list that holds the name of the first stopping signal once one came. Outside the
    event loop a signal raises ``KeyboardInterrupt`` where the sweep is; inside it, the loop's
    handler cancels the runs so that they stop at their next await (see
    :func:`cancel_on_signals`).
    """
    stop: list[str] = []
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handler(signum, frame):
        if not stop:
            stop.append(signal.Signals(signum).name)
        raise KeyboardInterrupt

    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def cancel_on_signals(stop: list[str]) -> Iterator[None]:
    """Inside the event loop: the first SIGINT/SIGTERM cancels the current task (the runs),
    a clean stop; the handlers of :func:`stop_signals` are back afterwards."""
    main = asyncio.current_task()
    if main is None or threading.current_thread() is not threading.main_thread():
        yield
        return
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def on_signal(sig: signal.Signals) -> None:
        if not stop:
            stop.append(sig.name)
            logger.warning(
                "%s: stopping; nothing new is sent and answers on their way are kept",
                sig.name,
            )
            main.cancel()

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            loop.remove_signal_handler(sig)
            signal.signal(sig, handler)  # the loop leaves the default behind
