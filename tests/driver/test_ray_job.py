"""`ray start --head` on 127.0.0.1 + `ray job submit --working-dir .` runs the smoke sweep."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from izero.results import ResultsStore

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ray_job_submit_runs_smoke_sweep(tmp_path):
    temp_dir = tempfile.mkdtemp(prefix="izj", dir="/tmp")
    gcs, dashboard = _free_port(), _free_port()
    address = f"http://127.0.0.1:{dashboard}"
    # Ray 2.60 turns on token auth once a token exists; the job CLI must then ask for it.
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    head = subprocess.Popen(
        [
            "ray",
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            f"--port={gcs}",
            f"--dashboard-port={dashboard}",
            "--dashboard-host=127.0.0.1",
            "--include-dashboard=true",
            "--num-cpus=4",
            f"--temp-dir={temp_dir}",
            # Ports of its own: the suite's local Ray already holds the default agent ports.
            f"--dashboard-agent-listen-port={_free_port()}",
            f"--dashboard-agent-grpc-port={_free_port()}",
            f"--runtime-env-agent-port={_free_port()}",
            f"--metrics-export-port={_free_port()}",
            f"--ray-client-server-port={_free_port()}",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    out = tmp_path / "job-sweep"
    try:
        deadline = time.time() + 120
        while True:
            probe = subprocess.run(
                ["ray", "job", "list", "--address", address],
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            if probe.returncode == 0:
                break
            assert head.poll() is None, head.stdout.read()
            assert time.time() < deadline, probe.stderr
            time.sleep(1)
        submit = [
            "ray",
            "job",
            "submit",
            "--address",
            address,
            "--working-dir",
            str(REPO),
            "--",
            "python",
            "jobs/sweep.py",
            "--config",
            "jobs/configs/smoke.yaml",
            "--set",
            f"output.path={out}",
            "--no-report",
        ]
        agent_deadline = time.time() + 90  # the job agent comes up a little after the dashboard
        while True:
            job = subprocess.run(
                submit, env=env, capture_output=True, text=True, timeout=420, cwd=REPO
            )
            if "No available agent" not in job.stdout + job.stderr or time.time() > agent_deadline:
                break
            time.sleep(2)
        assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
        assert "succeeded" in (job.stdout + job.stderr).lower()
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)

    store = ResultsStore(str(out))
    assert store.is_finished()
    summaries = store.read_summaries().to_pylist()
    assert {(s["task"], s["method"]) for s in summaries} == {
        (t, m) for t in ("sum", "first_word_letter") for m in ("instructzero", "random")
    }
    assert all(s["n_evaluations"] == 4 + 2 * 4 for s in summaries)
    assert json.loads((out / "provenance.json").read_text())["config"]["name"] == "smoke"
