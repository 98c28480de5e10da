"""A sweep that cannot work fails before Ray starts or anything is written, in one line; one
that fails before its first evaluation takes back what it wrote."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from izero import cli
from izero.blackbox.errors import AuthenticationError
from izero.blackbox.simulated import SimulatedOptions, SimulatedServer
from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.results import ResultsStore
from izero.tasks import load_task

KEY = "sk-preflight-test-key-0123"
VAR = "IZERO_PREFLIGHT_SWEEP_KEY"


@pytest.fixture
def no_ray(monkeypatch):
    """Fail the test if the sweep gets as far as starting Ray."""

    def refuse(*args, **kwargs):
        raise AssertionError("the sweep started Ray although its preflight should have failed")

    monkeypatch.setattr("izero.driver.sweep._init_ray", refuse)


@pytest.fixture(scope="module")
def server():
    server = SimulatedServer([load_task("sum")], options=SimulatedOptions(api_key=KEY))
    server.start()
    yield server
    server.stop()


def _write_config(tmp_path: Path, base_url: str, **blackbox) -> Path:
    raw = {
        "name": "preflight",
        "tasks": ["sum"],
        "methods": ["instructzero"],
        "budget": {"preset": "smoke", "n_rounds": 1},
        "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 8},
        "blackbox": {
            "backend": "openai",
            "base_url": base_url,
            "model": "izero-sim",
            "api_key_env": VAR,
            **blackbox,
        },
        "output": {"path": str(tmp_path / "out")},
    }
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _sweep(capsys, config: Path, *extra: str) -> tuple[int, str]:
    status = cli.main(["sweep", "--config", str(config), "--no-report", *extra])
    return status, capsys.readouterr().err


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("izero: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_an_unset_key_is_named_before_anything_starts(
    capsys, tmp_path, server, monkeypatch, no_ray
):
    monkeypatch.delenv(VAR, raising=False)
    status, err = _sweep(capsys, _write_config(tmp_path, server.base_url))
    line = _one_error_line(err)
    assert status == 2
    assert "no API key" in line and f"{VAR} is not set" in line and f"export {VAR}=" in line
    assert "api_key in the config" not in line
    assert not (tmp_path / "out").exists()


def test_an_unwritable_output_path_is_one_line(capsys, tmp_path, server, monkeypatch, no_ray):
    monkeypatch.setenv(VAR, KEY)
    config = _write_config(tmp_path, server.base_url)
    status, err = _sweep(capsys, config, "--set", "output.path=/proc/izero-x")
    line = _one_error_line(err)
    assert status == 2 and "output.path" in line and "/proc/izero-x" in line
    assert "Fix:" in line


def test_a_corrupt_task_file_is_one_line(capsys, tmp_path, server, monkeypatch, no_ray):
    monkeypatch.setenv(VAR, KEY)
    data = tmp_path / "data"
    (data / "induce").mkdir(parents=True)
    (data / "induce" / "broken.json").write_text('{"examples": {"1": {"input": "a"')
    config = _write_config(tmp_path, server.base_url)
    status, err = _sweep(capsys, config, "--data-dir", str(data), "--set", "tasks=[broken]")
    line = _one_error_line(err)
    assert status == 2 and "broken" in line
    assert not (tmp_path / "out").exists()


def test_a_dead_endpoint_is_refused_before_anything_starts(capsys, tmp_path, monkeypatch, no_ray):
    monkeypatch.setenv(VAR, KEY)
    monkeypatch.setattr("izero.blackbox.preflight.PREFLIGHT_WAIT_S", 0.05)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, err = _sweep(capsys, _write_config(tmp_path, f"http://127.0.0.1:{port}/v1"))
    line = _one_error_line(err)
    assert status == 2 and f"127.0.0.1:{port}" in line and "does not answer" in line
    assert "blackbox.preflight: false" in line
    assert not (tmp_path / "out").exists()


def test_a_sweep_failing_before_its_first_evaluation_leaves_nothing_behind(
    ray_local, tmp_path, server, monkeypatch
):
    # Without preflight the missing key is found by the first call: the sweep has started
    # (provenance, checkpoints) but evaluated nothing, so it takes that back...
    monkeypatch.delenv(VAR, raising=False)
    raw = yaml.safe_load(_write_config(tmp_path, server.base_url, preflight=False).read_text())
    with pytest.raises(AuthenticationError, match=f"no API key was sent.*{VAR}"):
        run_sweep(config_from_dict(raw))
    store = ResultsStore(raw["output"]["path"])
    assert not store.exists()
    # ... and the corrected command runs as a new sweep, not refused as an unfinished one.
    monkeypatch.setenv(VAR, KEY)
    outcome = run_sweep(config_from_dict(raw))
    assert ResultsStore(outcome.uri).is_finished()
    assert len(outcome.outcomes) == 1 and outcome.outcomes[0].test_score is not None
