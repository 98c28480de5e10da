"""The sweep's black box on a vLLM server izero starts (``blackbox.backend: vllm``).

Maps the ``blackbox`` config section to :class:`~izero.blackbox.vllm_server.VLLMServerOptions`
and the endpoint fields of the scoring pool; :func:`vllm_scoring_backend` is what the driver's
``_scoring_backend`` calls for this backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from izero.config import BlackBoxConfig, SweepConfig


def vllm_server_options(bb: BlackBoxConfig) -> Any:
    """The :class:`VLLMServerOptions` of a ``blackbox`` section with ``backend: vllm``."""
    from izero.blackbox.vllm_server import VLLMServerOptions

    v = bb.vllm
    return VLLMServerOptions(
        model=bb.model or "",
        served_model_name=v.served_model_name,
        dtype=v.dtype,
        max_model_len=v.max_model_len,
        num_gpus=bb.num_gpus,
        gpu_memory_utilization=v.gpu_memory_utilization,
        enforce_eager=v.enforce_eager,
        cpu_kvcache_gb=v.cpu_kvcache_gb,
        extra_args=v.extra_args,
        startup_timeout_s=v.startup_timeout_s,
    )


def endpoint_fields(bb: BlackBoxConfig) -> dict[str, Any]:
    """The :class:`EndpointConfig` fields a ``blackbox`` section sets, other than the address,
    model, key and cache identity (limits, retries, prices and caps apply to every backend)."""
    return {
        "api_key_env": bb.api_key_env,
        "temperature": bb.temperature,
        "max_tokens": bb.max_tokens,
        "max_tokens_param": bb.max_tokens_param,
        "headers": dict(bb.headers),
        "timeout_s": bb.timeout_s,
        "rpm": bb.rpm,
        "tpm": bb.tpm,
        "max_retries": bb.max_retries,
        "price_prompt_per_1k": bb.price_per_1k_prompt,
        "price_completion_per_1k": bb.price_per_1k_completion,
        "max_calls": bb.max_calls,
        "max_total_tokens": bb.max_total_tokens,
        "max_cost": bb.max_cost,
        "concurrency": bb.concurrency,
    }


def vllm_scoring_backend(config: SweepConfig, cache_dir: Path | None) -> tuple[str, Any]:
    """Start the vLLM server of ``config.blackbox`` and a scoring pool against it:
    ``(served model name, scorer)``; ``scorer.close()`` stops both."""
    from izero.blackbox.vllm_scorer import VLLMScorer

    bb = config.blackbox
    fields = endpoint_fields(bb)
    del fields["api_key_env"]  # the server's own key is used
    scorer = VLLMScorer.start(vllm_server_options(bb), endpoint=fields, cache_dir=cache_dir)
    return scorer.served_model, scorer
