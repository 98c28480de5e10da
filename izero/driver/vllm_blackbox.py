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


def vllm_scoring_backend(config: SweepConfig, cache_dir: Path | None) -> tuple[str, Any]:
    """Start the vLLM server of ``config.blackbox`` and a scoring pool against it:
    ``(served model name, scorer)``; ``scorer.close()`` stops both."""
    from izero.blackbox.vllm_scorer import VLLMScorer
    from izero.driver.stages import endpoint_fields

    bb = config.blackbox
    fields = endpoint_fields(bb)
    del fields["api_key_env"]  # the server's own key is used
    scorer = VLLMScorer.start(vllm_server_options(bb), endpoint=fields, cache_dir=cache_dir)
    return scorer.served_model, scorer
