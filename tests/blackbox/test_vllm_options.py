"""The vLLM server's command line and environment, from its options (no server started)."""

from __future__ import annotations

from pathlib import Path

import pytest

from izero.blackbox.vllm_server import VLLMServerOptions
from izero.errors import ConfigError


def _flags(cmd: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for i, arg in enumerate(cmd):
        if arg.startswith("--"):
            nxt = cmd[i + 1] if i + 1 < len(cmd) else None
            out[arg] = None if nxt is None or nxt.startswith("--") else nxt
    return out


def test_cpu_command_is_the_module_form_eager_without_gpu_flags():
    options = VLLMServerOptions(model="/m", dtype="float32", max_model_len=512)
    cmd = options.command(model_path="/m", port=8123)
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    flags = _flags(cmd)
    assert flags["--model"] == "/m" and flags["--port"] == "8123"
    assert flags["--host"] == "127.0.0.1" and flags["--served-model-name"] == "/m"
    assert flags["--dtype"] == "float32" and flags["--max-model-len"] == "512"
    assert "--enforce-eager" in flags
    assert "--gpu-memory-utilization" not in flags and "--tensor-parallel-size" not in flags


@pytest.mark.parametrize(
    ("num_gpus", "share", "tp"), [(0.5, "0.45", None), (1, None, None), (2, None, "2")]
)
def test_gpu_shares_and_tensor_parallel(num_gpus, share, tp):
    flags = _flags(VLLMServerOptions(model="m", num_gpus=num_gpus).command(model_path="m", port=1))
    assert flags.get("--gpu-memory-utilization") == share
    assert flags.get("--tensor-parallel-size") == tp
    assert "--enforce-eager" not in flags  # CUDA graphs on GPUs
    explicit = VLLMServerOptions(model="m", num_gpus=0.5, gpu_memory_utilization=0.3)
    assert _flags(explicit.command(model_path="m", port=1))["--gpu-memory-utilization"] == "0.3"


def test_environment_is_offline_private_and_keyed(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    env = VLLMServerOptions(model="m", cpu_kvcache_gb=2, env={"X_EXTRA": "1"}).environment(
        temp_dir=tmp_path, api_key="k"
    )
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["VLLM_CACHE_ROOT"].startswith(str(tmp_path))
    assert env["TMPDIR"].startswith(str(tmp_path))  # vllm_dist_* files land there
    assert env["VLLM_API_KEY"] == "k" and env["VLLM_CPU_KVCACHE_SPACE"] == "2"
    assert env["X_EXTRA"] == "1"
    gpu = VLLMServerOptions(model="m", num_gpus=1).environment(temp_dir=tmp_path, api_key="k")
    assert "VLLM_CPU_KVCACHE_SPACE" not in gpu


def test_identity_names_what_changes_answers_not_the_address():
    a = VLLMServerOptions(model="org/m", dtype="bfloat16", port=1)
    b = VLLMServerOptions(model="org/m", dtype="bfloat16", port=2)
    assert a.identity == b.identity == "vllm://org/m?dtype=bfloat16&max_model_len=None"
    assert VLLMServerOptions(model="org/m", dtype="float32").identity != a.identity


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"model": ""}, "model"),
        ({"dtype": "int4"}, "dtype"),
        ({"max_model_len": 4}, "max_model_len"),
        ({"num_gpus": 1.5}, "num_gpus"),
        ({"num_gpus": -1}, "num_gpus"),
        ({"gpu_memory_utilization": 1.5}, "gpu_memory_utilization"),
        ({"cpu_kvcache_gb": 0}, "cpu_kvcache_gb"),
        ({"extra_args": ("--port", "1")}, "extra_args"),
        ({"extra_args": ("--max-model-len=9",)}, "extra_args"),
        ({"startup_timeout_s": 0}, "startup_timeout_s"),
    ],
)
def test_bad_options_are_refused(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        VLLMServerOptions(**{"model": "m", **kwargs})
