"""A sweep whose driver process is killed resumes without losing or repaying anything.

The driver runs as a real `izero sweep` process against a simulated OpenAI-compatible server
that this test owns, so the server outlives the killed driver and counts every request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from izero.blackbox import SimulatedOptions, SimulatedServer
from izero.results import ResultsStore
from izero.tasks import load_task

pytestmark = pytest.mark.slow

KEY = "sk-test-0123456789abcdef-never-logged"
CONCURRENCY = 8
ROW_FIELDS = (
    "task",
    "method",
    "seed",
    "round",
    "eval_index",
    "instruction",
    "dev_score",
    "score_vector",
    "duplicate_of",
)


def _config(path: Path, base_url: str, out: Path) -> Path:
    raw = {
        "name": "resume",
        "tasks": ["sum"],
        "seeds": [0],
        "methods": ["instructzero", "random"],
        "budget": {"preset": "smoke", "n_rounds": 4},
        "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 12},
        "blackbox": {
            "backend": "openai",
            "base_url": base_url,
            "model": "izero-sim",
            "api_key_env": "IZERO_TEST_KEY",
            "concurrency": CONCURRENCY,
        },
        "output": {"path": str(out)},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


def _sweep(config: Path, *extra: str, wait: bool = True):
    env = {**os.environ, "IZERO_TEST_KEY": KEY, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "izero",
        "--log-level",
        "INFO",
        "sweep",
        "--config",
        str(config),
        "--no-report",
        *extra,
    ]
    # Its own session, so killing it takes down the Ray processes it started too.
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    return out


def _rows(uri: Path) -> list[tuple]:
    table = ResultsStore(str(uri)).read_evaluations().to_pylist()
    return sorted(tuple(json.dumps(r[f]) for f in ROW_FIELDS) for r in table)


def _rounds_done(out: Path) -> int:
    done = 0
    for f in (out / "checkpoints").glob("run-sum__instructzero__0.json"):
        done = json.loads(f.read_text()).get("rounds_done", 0)
    return done


def test_killed_driver_resumes_same_rows_no_extra_calls(tmp_path):
    server = SimulatedServer(
        tasks=[load_task("sum")], options=SimulatedOptions(api_key=KEY, latency_s=0.02, seed=0)
    )
    base_url = server.start()
    try:
        # Uninterrupted reference sweep.
        ref_out = tmp_path / "ref"
        log_ref = _sweep(_config(tmp_path / "ref.yaml", base_url, ref_out))
        n_ref = server.stats()["n_requests"]

        # The same sweep, its driver killed (SIGKILL) after two rounds of instructzero.
        out = tmp_path / "killed"
        cfg = _config(tmp_path / "killed.yaml", base_url, out)
        proc = _sweep(cfg, wait=False)
        deadline = time.time() + 240
        while _rounds_done(out) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        log_killed, _ = proc.communicate(timeout=60)
        assert not ResultsStore(str(out)).is_finished()

        # Without --resume the unfinished sweep is refused; with it, it completes.
        env = {**os.environ, "IZERO_TEST_KEY": KEY}
        refused = subprocess.run(
            [sys.executable, "-m", "izero", "sweep", "--config", str(cfg)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert refused.returncode == 2 and "--resume" in refused.stderr
        log_resumed = _sweep(cfg, "--resume")
        n_killed_and_resumed = server.stats()["n_requests"] - n_ref
    finally:
        server.stop()

    assert _rows(out) == _rows(ref_out)
    # Paid answers are cached as they arrive: only calls in flight at the kill can be repeated.
    assert n_ref <= n_killed_and_resumed <= n_ref + CONCURRENCY
    # The key never reaches logs or results.
    for text in (log_ref, log_killed, log_resumed):
        assert KEY not in text
    for f in [*ref_out.rglob("*"), *out.rglob("*")]:
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
