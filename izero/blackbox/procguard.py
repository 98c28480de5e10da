"""Run a command so that it cannot outlive the process that started it (standard library only).

    python procguard.py --owner PID --watch-fd FD --grace SECONDS -- COMMAND [ARGS ...]

The owner starts this script with ``start_new_session=True`` and ``pass_fds=(FD,)``, where FD is
the read end of a pipe whose write end only the owner holds. The script forks and exits at once
(the owner reaps it); the fork, the *guard*, stays in the new process group (its id is the
script's pid), starts ``COMMAND`` in it (servers such as vLLM start more processes of their own,
which stay in it) and stops the whole group (SIGTERM, then SIGKILL after ``--grace`` seconds)
when

- it gets SIGTERM, SIGINT or SIGHUP (the owner's ``stop``: ``killpg(pgid, SIGTERM)``), or
- the owner is gone: the pipe reads end-of-file (the kernel closes the owner's end when it dies,
  even by SIGKILL) or ``PID`` no longer exists.

When the command ends by itself the guard stops what is left of the group and exits; it logs
``procguard: the command exited with status N`` first (128 + N: killed by signal N).

Why a fork that outlives its starter: Ray kills the direct children of an actor's worker process
with SIGKILL when the actor dies, which would kill a guard before it could act, and orphan the
server it guards. A pipe rather than ``PR_SET_PDEATHSIG``, which fires when the *thread* that
forked exits. The script is run by its file path, not imported, so it needs only the standard
library.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import subprocess
import sys
import time

POLL_S = 0.25
"""How often the guard looks at its owner and its command (seconds)."""
EXIT_NOTE = "procguard: the command exited with status"
"""How the guard's last log line starts when the command ended by itself."""


def _note(text: str) -> None:
    sys.stderr.write(f"procguard: {text}\n")
    sys.stderr.flush()


def _others_in_group() -> bool:
    """Whether a live (not zombie) process other than this one is in this process group."""
    me, group = os.getpid(), os.getpgid(0)
    try:
        entries = os.listdir("/proc")
    except OSError:  # no /proc (not Linux): assume the group may still have members
        return True
    for entry in entries:
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as handle:
                stat = handle.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == group:
            return True
    return False


def _stop_group(child: subprocess.Popen, grace_s: float) -> None:
    """SIGTERM the group, wait up to ``grace_s`` for all of it, then SIGKILL what is left."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.killpg(0, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        child.poll()  # reap the command, so it does not count as alive
        if not _others_in_group():
            return
        time.sleep(POLL_S / 5)
    _note(f"the group outlived {grace_s:g} s after SIGTERM; killing it")
    os.killpg(0, signal.SIGKILL)  # the guard goes with them


def _owner_gone(owner: int, watch_fd: int) -> bool:
    readable, _, _ = select.select([watch_fd], [], [], POLL_S)
    if readable and not os.read(watch_fd, 1):  # end of file: the owner's end is closed
        return True
    try:
        os.kill(owner, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def _guard(args: argparse.Namespace, command: list[str]) -> int:
    stop: list[int] = []
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: stop.append(signum))
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    while True:
        owner_gone = _owner_gone(args.owner, args.watch_fd)  # waits up to POLL_S
        if stop or owner_gone:
            reason = f"signal {stop[0]}" if stop else f"its owner (pid {args.owner}) is gone"
            _note(f"stopping the process group: {reason}")
            _stop_group(child, args.grace)
            return 0
        code = child.poll()
        if code is not None:
            _note(f"{EXIT_NOTE.removeprefix('procguard: ')} {128 - code if code < 0 else code}")
            if _others_in_group():  # leave none of its children behind
                _stop_group(child, args.grace)
            return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--owner", type=int, required=True, help="pid of the owner")
    parser.add_argument("--watch-fd", type=int, required=True, help="read end of the owner's pipe")
    parser.add_argument("--grace", type=float, default=10.0, help="seconds before SIGKILL")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given after --")
    try:
        os.fstat(args.watch_fd)
    except OSError:
        parser.error(f"--watch-fd {args.watch_fd} is not an open file descriptor")
    if os.fork():  # the starter: the owner reaps it at once; Ray's cleanup cannot reach the fork
        os._exit(0)
    try:
        code = _guard(args, command)
    except BaseException as err:  # never let a guard die with its group still running
        _note(f"failed ({type(err).__name__}: {err}); stopping the group")
        os.killpg(0, signal.SIGKILL)
        raise
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
