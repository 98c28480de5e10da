"""The process guard that keeps a local server from outliving its owner (real processes)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from izero.blackbox.vllm_server import group_members

GUARD = Path(__file__).resolve().parents[2] / "izero" / "blackbox" / "procguard.py"


def _tree(*, ignore_term: bool = False, exit_after_s: float | None = None) -> list[str]:
    """A command that starts a child of its own (as vLLM starts its engine), then waits."""
    lines = [
        "import signal, subprocess, sys, time",
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)" if ignore_term else "",
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])",
        f"time.sleep({exit_after_s if exit_after_s is not None else 600})",
    ]
    return [sys.executable, "-c", "\n".join(lines)]


def _start_guarded(command: list[str], *, grace_s: float = 2.0) -> tuple[int, int, Path]:
    """Start ``command`` under the guard as an owner does: ``(pgid, pipe write end, log)``."""
    read_end, write_end = os.pipe()
    argv = [sys.executable, str(GUARD), "--owner", str(os.getpid()), "--watch-fd", str(read_end)]
    argv += ["--grace", str(grace_s), "--", *command]
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"procguard-{os.getpid()}-{time.time_ns()}"
    with log.open("wb") as out:
        starter = subprocess.Popen(argv, pass_fds=(read_end,), stderr=out, start_new_session=True)
    os.close(read_end)
    assert starter.wait(timeout=30) == 0  # it forks the guard and returns at once
    return starter.pid, write_end, log


def _wait_members(pgid: int, n: int, timeout_s: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while len(group_members(pgid)) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    return group_members(pgid)


def _gone_within(pgid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not group_members(pgid)


@pytest.fixture
def guarded():
    """Start guarded commands; close the pipes and remove the logs afterwards."""
    started: list[tuple[int, int, Path]] = []

    def start(command, **kwargs):
        started.append(_start_guarded(command, **kwargs))
        return started[-1]

    yield start
    for pgid, write_end, log in started:
        with contextlib.suppress(OSError):
            os.close(write_end)
        if group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)
        log.unlink(missing_ok=True)


def test_sigterm_to_the_group_stops_everything(guarded):
    pgid, _, log = guarded(_tree())
    assert len(_wait_members(pgid, 3)) == 3  # guard, command, its child
    os.killpg(pgid, signal.SIGTERM)
    assert _gone_within(pgid, 5.0)
    assert "stopping the process group: signal 15" in log.read_text()


def test_a_command_ignoring_sigterm_is_killed_after_the_grace(guarded):
    pgid, _, log = guarded(_tree(ignore_term=True), grace_s=1.0)
    assert len(_wait_members(pgid, 3)) == 3
    started = time.monotonic()
    os.killpg(pgid, signal.SIGTERM)
    assert _gone_within(pgid, 6.0)
    assert 1.0 <= time.monotonic() - started < 6.0
    assert "killing it" in log.read_text()


def test_a_command_that_ends_takes_its_children_along(guarded):
    pgid, _, log = guarded(_tree(exit_after_s=1.0))
    assert len(_wait_members(pgid, 3)) == 3
    assert _gone_within(pgid, 15.0)
    assert "the command exited with status 0" in log.read_text()


def test_the_group_goes_when_the_owner_closes_its_end(guarded):
    pgid, write_end, log = guarded(_tree())
    assert len(_wait_members(pgid, 3)) == 3
    os.close(write_end)  # what the kernel does when the owner dies
    assert _gone_within(pgid, 5.0)
    assert "is gone" in log.read_text()


def test_the_group_goes_when_the_owner_is_killed():
    owner_code = "\n".join(
        [
            "import sys, time",
            f"sys.path.insert(0, {str(Path(__file__).parent)!r})",
            "from test_procguard import _start_guarded, _tree",
            "pgid, _, log = _start_guarded(_tree())",
            "print(pgid, log, flush=True)",
            "time.sleep(600)",
        ]
    )
    owner = subprocess.Popen([sys.executable, "-c", owner_code], stdout=subprocess.PIPE, text=True)
    pgid_text, log = owner.stdout.readline().split()
    pgid = int(pgid_text)
    try:
        assert len(_wait_members(pgid, 3)) == 3
        owner.kill()  # SIGKILL: the owner runs no cleanup at all
        owner.wait()
        assert _gone_within(pgid, 5.0)
    finally:
        if group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)
        Path(log).unlink(missing_ok=True)


class _Owner:
    """A Ray actor that owns a guarded process group, as the vLLM server actor does."""

    def start(self, tests_dir: str) -> tuple[int, str]:
        sys.path.insert(0, tests_dir)
        from test_procguard import _start_guarded, _tree

        self.pgid, self.write_end, log = _start_guarded(_tree())
        return self.pgid, str(log)


def test_the_group_goes_when_its_ray_actor_is_killed(ray_local):
    ray = ray_local
    owner = ray.remote(num_cpus=0)(_Owner).remote()
    pgid, log = ray.get(owner.start.remote(str(Path(__file__).parent)))
    try:
        assert len(_wait_members(pgid, 3)) == 3
        ray.kill(owner)  # Ray SIGKILLs the worker and its direct children
        assert _gone_within(pgid, 10.0)
        assert "is gone" in Path(log).read_text()
    finally:
        if group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)
        Path(log).unlink(missing_ok=True)


@pytest.mark.parametrize(
    "argv",
    [[], ["--owner", "1", "--watch-fd", "0"], ["--owner", "1", "--watch-fd", "999", "--", "true"]],
)
def test_bad_invocations_start_nothing(argv):
    done = subprocess.run([sys.executable, str(GUARD), *argv], capture_output=True, timeout=30)
    assert done.returncode != 0


def test_the_group_goes_when_the_driver_owning_the_actor_dies():
    """Ray stops a dead driver's actors; the guard then stops the group the actor owned."""
    tests_dir = str(Path(__file__).parent)
    temp_dir = tempfile.mkdtemp(prefix="izr", dir="/tmp")  # short: Ray's socket paths
    driver_code = "\n".join(
        [
            "import sys, time, ray",
            "class Owner:",  # defined here, so that Ray ships it to the worker by value
            "    def start(self, tests_dir):",
            "        sys.path.insert(0, tests_dir)",
            "        from test_procguard import _start_guarded, _tree",
            "        self.pgid, self.write_end, log = _start_guarded(_tree())",
            "        return self.pgid, str(log)",
            f"ray.init(num_cpus=1, include_dashboard=False, _temp_dir={temp_dir!r})",
            "owner = ray.remote(num_cpus=0)(Owner).remote()",
            f"print(*ray.get(owner.start.remote({tests_dir!r})), flush=True)",
            "time.sleep(600)",
        ]
    )
    # its own session, so that the Ray processes it starts can all be cleaned up afterwards
    driver = subprocess.Popen(
        [sys.executable, "-c", driver_code],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    pgid = None
    try:
        pgid_text, log = driver.stdout.readline().split()
        pgid = int(pgid_text)
        assert len(_wait_members(pgid, 3)) == 3
        driver.kill()  # SIGKILL: no ray.shutdown, no cleanup in the driver
        driver.wait()
        assert _gone_within(pgid, 30.0)
        assert "is gone" in Path(log).read_text()
        Path(log).unlink(missing_ok=True)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(driver.pid, signal.SIGKILL)  # the Ray cluster that driver started
        if pgid is not None and group_members(pgid):
            os.killpg(pgid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)
