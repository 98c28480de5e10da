"""A sweep with ``instinct`` runs end to end offline and resumes after a kill without repaying."""

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
KEY = "sk-test-instinct-never-logged"
CONCURRENCY = 8
FIELDS = ("task", "method", "seed", "round", "eval_index", "z", "instruction", "dev_score")


def _config(path: Path, base_url: str, out: Path) -> Path:
    raw = {
        "name": "instinct-resume",
        "tasks": ["sum"],
        "seeds": [0],
        "methods": ["instinct"],
        "method_options": {
            "instinct": {"domain_size": 128, "subset_size": 64, "training_steps": 100}
        },
        "budget": {"n_init": 6, "n_rounds": 4, "q": 2, "n_demos": 3, "n_dev": 5, "n_test": 5},
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
    cmd = [sys.executable, "-m", "izero", "--log-level", "INFO", "sweep"]
    cmd += ["--config", str(config), "--no-report", *extra]
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
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out
    return out


def _rows(uri: Path) -> list[tuple]:
    table = ResultsStore(str(uri)).read_evaluations().to_pylist()
    return sorted(tuple(json.dumps(r[f]) for f in FIELDS) for r in table)


def _rounds_done(out: Path) -> int:
    f = out / "checkpoints" / "run-sum__instinct__0.json"
    return json.loads(f.read_text()).get("rounds_done", 0) if f.exists() else 0


def test_instinct_sweep_runs_offline_and_resumes_after_a_kill_without_repaying(tmp_path):
    server = SimulatedServer(
        tasks=[load_task("sum")], options=SimulatedOptions(api_key=KEY, latency_s=0.02, seed=0)
    )
    base_url = server.start()
    try:
        ref_out = tmp_path / "ref"
        log_ref = _sweep(_config(tmp_path / "ref.yaml", base_url, ref_out))
        n_ref = server.stats()["n_requests"]
        out = tmp_path / "killed"
        cfg = _config(tmp_path / "killed.yaml", base_url, out)
        proc = _sweep(cfg, wait=False)
        deadline = time.time() + 300
        while _rounds_done(out) < 2 and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        assert not ResultsStore(str(out)).is_finished()
        log_resumed = _sweep(cfg, "--resume")
        n_killed_and_resumed = server.stats()["n_requests"] - n_ref
    finally:
        server.stop()
    rows = _rows(ref_out)
    assert len(rows) == 6 + 4 * 2
    assert _rows(out) == rows
    # paid answers are cached as they arrive: only calls in flight at the kill can be repeated
    assert n_ref <= n_killed_and_resumed <= n_ref + CONCURRENCY
    summary = ResultsStore(str(ref_out)).read_summaries().to_pylist()
    assert [s["method"] for s in summary] == ["instinct"] and summary[0]["test_score"] is not None
    assert "features of 128 soft prompts" in log_ref and "no answered evaluation" not in log_ref
    assert "proposing random arms" not in log_ref + log_resumed
