"""Interrupted and killed sweeps resume without repaying and reproduce the uninterrupted sweep.

The sweeps run as real ``python -m izero sweep`` processes against a simulated endpoint this
test owns (it outlives them and remembers every request it answered). Three instructzero runs
(three seeds) reach their proposal steps together, so their GP fits share Ray tasks in ways
that depend on timing: the rows must still come out the same, bit for bit.
"""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from izero.blackbox.simulated import SimulatedOptions
from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.results import ResultsStore
from izero.tasks import load_task

from .servers import CountingServer, paid_twice

pytestmark = pytest.mark.slow

KEY = "sk-interrupt-test-key-0123"
VAR = "IZERO_INTERRUPT_TEST_KEY"
CONCURRENCY = 24  # several runs' rounds are scored at once and end together
ROW_FIELDS = (
    "task",
    "method",
    "seed",
    "round",
    "eval_index",
    "z",
    "instruction",
    "dev_score",
    "score_vector",
    "duplicate_of",
)
#: Where the interrupts fall, as answered requests (the whole sweep answers about 270).
SEED = int(os.environ.get("IZERO_INTERRUPT_SEED", time.time_ns() % 10_000))


def _raw(base_url: str, out: Path) -> dict:
    return {
        "name": "interrupt",
        "tasks": ["sum"],
        "seeds": [0, 1, 2],
        "methods": ["instructzero"],
        "budget": {"preset": "smoke", "n_rounds": 3},
        "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 12},
        "blackbox": {
            "backend": "openai",
            "base_url": base_url,
            "model": "izero-sim",
            "api_key_env": VAR,
            "rpm": 3000,
            "concurrency": CONCURRENCY,
        },
        "output": {"path": str(out)},
    }


def _server() -> CountingServer:
    server = CountingServer(
        [load_task("sum")], options=SimulatedOptions(api_key=KEY, latency_s=0.02, seed=0)
    )
    server.start()
    return server


def _rows(out: Path) -> list[tuple]:
    table = ResultsStore(str(out)).read_evaluations().to_pylist()
    return sorted(tuple(json.dumps(r[f]) for f in ROW_FIELDS) for r in table)


@pytest.fixture(scope="module")
def reference(ray_local, tmp_path_factory):
    """The rows of the uninterrupted sweep (run in this process)."""
    out = tmp_path_factory.mktemp("reference") / "sweep"
    server = _server()
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(VAR, KEY)
            run_sweep(config_from_dict(_raw(server.base_url, out)))
    finally:
        server.stop()
    assert paid_twice(server.answered()) == 0
    return _rows(out), len(server.answered())


def _start(cmd: list[str]) -> subprocess.Popen:
    env = {**os.environ, VAR: KEY, "PYTHONUNBUFFERED": "1"}
    # its own session, as a terminal's job: a signal to the group reaches what it started
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip


def _sweep_cmd(config: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "izero", "sweep", "--config", str(config), "--no-report", *extra]


def _stop_after(proc, server: CountingServer, answered: int, send) -> tuple[int, str]:
    """Send a signal (``send(proc)``) once the server has answered ``answered`` requests."""
    deadline = time.time() + 300
    while len(server.answered()) < answered and proc.poll() is None:
        assert time.time() < deadline, "the sweep made no progress"
        time.sleep(0.01)
    assert proc.poll() is None, f"the sweep ended before it could be stopped (seed {SEED})"
    send(proc)
    _, err = proc.communicate(timeout=300)
    return proc.returncode, err


def _resume_command(err: str) -> list[str]:
    line = next(x for x in err.splitlines() if "resume with: " in x)
    cmd = shlex.split(line.split("resume with: ", 1)[1])
    assert cmd[:3] == ["python", "-m", "izero"] and cmd[-1] == "--resume"
    return [sys.executable, *cmd[1:]]


def test_interrupts_repay_nothing_and_the_resume_reproduces_the_sweep(reference, tmp_path):
    ref_rows, total = reference
    rng = random.Random(SEED)
    server = _server()
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(_raw(server.base_url, tmp_path / "sweep")))
    try:
        # Ctrl-C at a random moment (to the whole process group, as a terminal sends it)
        first = rng.randrange(10, total // 2)
        status, err = _stop_after(
            _start(_sweep_cmd(config)), server, first, lambda p: os.killpg(p.pid, signal.SIGINT)
        )
        assert status == 130, err
        assert "interrupted by SIGINT" in err and "Traceback" not in err, err
        resume = _resume_command(err)
        assert resume == _sweep_cmd(config, "--resume")
        # SIGTERM (to the driver only, as a job scheduler sends it) while resumed
        second = rng.randrange(len(server.answered()) + 5, total - 10)
        status, err = _stop_after(
            _start(resume), server, second, lambda p: os.kill(p.pid, signal.SIGTERM)
        )
        assert status == 130 and "interrupted by SIGTERM" in err, err
        assert _resume_command(err) == resume
        finish = _start(resume)
        _, err = finish.communicate(timeout=300)
        assert finish.returncode == 0, err
    finally:
        server.stop()
    assert _rows(tmp_path / "sweep") == ref_rows, f"seed {SEED}"
    # every answer paid for before an interrupt was kept: none was paid for twice
    assert paid_twice(server.answered()) == 0, f"seed {SEED}"
    for text in (err,):
        assert KEY not in text


def test_a_killed_sweep_resumes_to_the_same_rows(reference, tmp_path):
    ref_rows, total = reference
    rng = random.Random(SEED + 1)
    server = _server()
    config = tmp_path / "sweep.yaml"
    config.write_text(yaml.safe_dump(_raw(server.base_url, tmp_path / "sweep")))
    logs = []
    try:
        for low, high in ((10, total // 2), (total // 2, total - 10)):
            moment = max(rng.randrange(low, high), len(server.answered()) + 5)
            _, err = _stop_after(
                _start(_sweep_cmd(config, "--resume")),
                server,
                moment,
                lambda p: os.killpg(p.pid, signal.SIGKILL),
            )
            logs.append(err)
        assert not ResultsStore(str(tmp_path / "sweep")).is_finished()
        # without --resume the unfinished sweep is refused, and says how to go on
        refused = _start(_sweep_cmd(config))
        _, err = refused.communicate(timeout=120)
        assert refused.returncode == 2 and "--resume" in err, err
        finish = _start(_sweep_cmd(config, "--resume"))
        _, err = finish.communicate(timeout=300)
        assert finish.returncode == 0, err
        logs.append(err)
    finally:
        server.stop()
    assert _rows(tmp_path / "sweep") == ref_rows, f"seed {SEED}"
    # a SIGKILL loses at most the answers in flight at that moment
    assert paid_twice(server.answered()) <= 2 * CONCURRENCY
    # the key never reaches logs, results, checkpoints or the cache
    assert not any(KEY in text for text in logs)
    for f in (tmp_path / "sweep").rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
