"""The ``blackbox`` section: the endpoint (or local model) scored under each instruction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from izero.config._checks import (
    ENV_NAME_RE,
    REDACTED,
    check,
    in_range,
    int_at_least,
    is_number,
    opt_positive,
)

# Black box.
DEFAULT_BACKEND = "simulated"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TEMPERATURE = 0.0
DEFAULT_MAX_TOKENS = 64
#: Requests per minute across all workers (a conservative default for paid endpoints).
DEFAULT_RPM = 600.0
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 6
DEFAULT_CONCURRENCY = 32
#: Seconds a sweep holds its calls and probes an endpoint that answers nothing before stopping.
DEFAULT_OUTAGE_ALLOWANCE_S = 600.0
DEFAULT_SIM_LATENCY_S = 0.05
DEFAULT_SIM_SEED = 0
#: ``rpm`` when not set: DEFAULT_RPM for paid endpoints, no limit for a local model.
RPM_AUTO = "auto"
#: Backends whose model runs on the sweep's own machines: nothing billed, no rate limit.
LOCAL_BACKENDS = ("hf", "vllm")
#: Request fields that carry the answer length (see izero.blackbox.config.MAX_TOKENS_PARAMS).
MAX_TOKENS_PARAMS = ("max_tokens", "max_completion_tokens")

# vLLM server izero starts (backend vllm).
DEFAULT_VLLM_DTYPE = "auto"
DEFAULT_VLLM_STARTUP_TIMEOUT_S = 900.0
DEFAULT_VLLM_CPU_KVCACHE_GB = 1
VLLM_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class SimulatedServerConfig:
    """The offline simulated black box served over HTTP on 127.0.0.1 (demo, tests, benchmarks).

    ``latency_s``: seconds per response; ``rpm``: requests per minute the *server* enforces
    (429 above it; None = unlimited); fault rates are probabilities per request of a 5xx reply
    (``error_rate``), a reply slower than the client timeout (``timeout_rate``), an unparsable
    body (``malformed_rate``) and a dropped connection (``drop_rate``); ``seed`` fixes them.
    """

    _SECTION: ClassVar[str] = "blackbox.simulated."

    latency_s: float = DEFAULT_SIM_LATENCY_S
    rpm: float | None = None
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    malformed_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = DEFAULT_SIM_SEED

    def __post_init__(self) -> None:
        s = self._SECTION
        check(
            is_number(self.latency_s) and self.latency_s >= 0,
            f"{s}latency_s",
            self.latency_s,
            "a number of seconds >= 0",
        )
        opt_positive(s, "rpm", self.rpm)
        rates = ("error_rate", "timeout_rate", "malformed_rate", "drop_rate")
        for name in rates:
            in_range(s, name, getattr(self, name), 0.0, 1.0)
        total = sum(getattr(self, n) for n in rates)
        check(
            total <= 1.0,
            f"{s}error_rate+timeout_rate+malformed_rate+drop_rate",
            total,
            "a total fault probability <= 1",
            "lower the fault rates so that they sum to at most 1",
        )
        int_at_least(s, "seed", self.seed, 0)


@dataclass(frozen=True)
class VLLMServerConfig:
    """The vLLM OpenAI-compatible server izero starts for backend ``vllm``.

    ``dtype``: vLLM's ``--dtype`` (``auto``: the checkpoint's; float32 on CPU). ``max_model_len``:
    the context in tokens (null: the model's; smaller leaves more KV cache). ``served_model_name``:
    the name requests use (null: ``blackbox.model``). ``gpu_memory_utilization``: share of the
    GPU vLLM may take (null: 0.9, times ``blackbox.num_gpus`` when that is a fraction).
    ``enforce_eager``: no CUDA graphs (null: eager on CPU only). ``cpu_kvcache_gb``: KV cache of a
    server on CPU (GiB). ``extra_args``: more ``vllm serve`` flags, e.g. ``[--max-num-seqs, "64"]``.
    ``startup_timeout_s``: seconds to become healthy.
    """

    _SECTION: ClassVar[str] = "blackbox.vllm."

    dtype: Literal["auto", "float32", "bfloat16", "float16"] = DEFAULT_VLLM_DTYPE
    max_model_len: int | None = None
    served_model_name: str | None = None
    gpu_memory_utilization: float | None = None
    enforce_eager: bool | None = None
    cpu_kvcache_gb: int = DEFAULT_VLLM_CPU_KVCACHE_GB
    extra_args: tuple[str, ...] = ()
    startup_timeout_s: float = DEFAULT_VLLM_STARTUP_TIMEOUT_S

    def __post_init__(self) -> None:
        s = self._SECTION
        shown = ", ".join(VLLM_DTYPES)
        check(self.dtype in VLLM_DTYPES, f"{s}dtype", self.dtype, f"one of {shown}")
        if self.max_model_len is not None:
            int_at_least(s, "max_model_len", self.max_model_len, 16)
        if self.served_model_name is not None:
            check(
                bool(self.served_model_name.strip()),
                f"{s}served_model_name",
                self.served_model_name,
                "a non-empty name or null (blackbox.model)",
            )
        share = self.gpu_memory_utilization
        check(
            share is None or (is_number(share) and 0 < share <= 1),
            f"{s}gpu_memory_utilization",
            share,
            "a share in (0, 1] or null",
        )
        int_at_least(s, "cpu_kvcache_gb", self.cpu_kvcache_gb, 1)
        owned = {
            "--model": "blackbox.model",
            "--served-model-name": f"{s}served_model_name",
            "--dtype": f"{s}dtype",
            "--max-model-len": f"{s}max_model_len",
            "--gpu-memory-utilization": f"{s}gpu_memory_utilization",
            "--tensor-parallel-size": "blackbox.num_gpus",
            "--enforce-eager": f"{s}enforce_eager",
            "--host": None,
            "--port": None,
            "--api-key": None,
        }
        for arg in self.extra_args:
            flag = arg.split("=", 1)[0]
            check(
                flag not in owned,
                f"{s}extra_args",
                arg,
                "flags izero does not set itself",
                f"set {owned[flag]} instead" if owned.get(flag) else f"remove {flag}",
            )
        check(
            is_number(self.startup_timeout_s) and self.startup_timeout_s > 0,
            f"{s}startup_timeout_s",
            self.startup_timeout_s,
            "a positive number of seconds",
        )


@dataclass(frozen=True)
class BlackBoxConfig:
    """The black-box LLM that answers under each instruction.

    ``backend``: ``simulated`` (offline, :class:`SimulatedServerConfig`), ``openai`` (any
    OpenAI-compatible chat-completions endpoint at ``base_url``; needs ``model``), ``vllm`` (a
    vLLM server izero starts for a local ``model``, a folder or an id in the nodes' Hugging Face
    cache, and stops when the sweep ends: :class:`VLLMServerConfig`) or ``hf`` (a local Hugging
    Face ``model`` in a Ray actor). The API key is read from the environment variable
    ``api_key_env`` at run time and never stored. Limits: ``rpm`` requests and ``tpm`` tokens
    per minute across all workers (None: no limit; ``rpm`` unset: 600 for ``openai`` and
    ``simulated``, no limit for the local ``vllm`` and ``hf``), ``timeout_s`` seconds per request,
    ``max_retries`` retries of a transient failure, ``concurrency`` requests in flight.
    ``max_tokens_param``: the request field carrying ``max_tokens`` (``max_completion_tokens``
    for OpenAI models that refuse ``max_tokens``). Prices are per 1000 tokens; ``max_calls``,
    ``max_total_tokens`` and ``max_cost`` stop a sweep before it spends more (None: no cap).
    ``num_gpus`` (backends ``vllm`` and ``hf``): GPUs for the model's actor, 0 = CPU; a
    fraction such as 0.5 shares a GPU with a generator actor; ``vllm`` also takes a whole number
    above 1 (tensor parallel).
    ``outage_allowance_s``: how long an endpoint may answer nothing (every attempt failing
    with connection errors, timeouts or 5xx) while every call is held and the endpoint probed
    with backoff, before the sweep stops (it resumes later without repaying anything).
    ``preflight``: before anything is written, check that the endpoint answers a cheap request
    (``GET /models``, else a 1-token completion) with the key; false for an endpoint that
    refuses both.
    """

    _SECTION: ClassVar[str] = "blackbox."

    backend: Literal["simulated", "openai", "vllm", "hf"] = DEFAULT_BACKEND
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    temperature: float = DEFAULT_TEMPERATURE
    max_tokens: int = DEFAULT_MAX_TOKENS
    max_tokens_param: Literal["max_tokens", "max_completion_tokens"] = MAX_TOKENS_PARAMS[0]
    rpm: float | Literal["auto"] | None = RPM_AUTO
    tpm: float | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    headers: dict[str, str] = field(default_factory=dict)
    price_per_1k_prompt: float = 0.0
    price_per_1k_completion: float = 0.0
    max_calls: int | None = None
    max_total_tokens: int | None = None
    max_cost: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    num_gpus: float = 0.0
    outage_allowance_s: float = DEFAULT_OUTAGE_ALLOWANCE_S
    preflight: bool = True
    simulated: SimulatedServerConfig = field(default_factory=SimulatedServerConfig)
    vllm: VLLMServerConfig = field(default_factory=VLLMServerConfig)

    def __post_init__(self) -> None:
        s = self._SECTION
        if self.rpm == RPM_AUTO:
            rpm = None if self.backend in LOCAL_BACKENDS else DEFAULT_RPM
            object.__setattr__(self, "rpm", rpm)
        if self.backend in ("openai", *LOCAL_BACKENDS):
            example = "gpt-4o-mini" if self.backend == "openai" else "Qwen/Qwen2.5-0.5B-Instruct"
            check(
                bool(self.model and self.model.strip()),
                f"{s}model",
                self.model,
                f"a model name for backend '{self.backend}'",
                f"set blackbox.model, e.g. --set blackbox.model={example}",
            )
        if self.backend == "openai":
            check(
                self.base_url is not None,
                f"{s}base_url",
                self.base_url,
                "the endpoint URL for backend 'openai'",
                "set blackbox.base_url, e.g. https://api.openai.com/v1 or "
                "http://127.0.0.1:8000/v1 for a local vLLM server",
            )
        if self.base_url is not None:
            check(
                self.base_url.startswith(("http://", "https://")),
                f"{s}base_url",
                self.base_url,
                "an http:// or https:// URL",
            )
        looks_like_key = (
            self.api_key_env.startswith(("sk-", "Bearer")) or len(self.api_key_env) > 64
        )
        check(
            not looks_like_key,
            f"{s}api_key_env",
            REDACTED,
            "the NAME of an environment variable, not the key itself",
            "export the key, e.g. OPENAI_API_KEY=..., and set api_key_env: OPENAI_API_KEY",
        )
        check(
            bool(ENV_NAME_RE.match(self.api_key_env)),
            f"{s}api_key_env",
            self.api_key_env,
            "an environment variable name such as OPENAI_API_KEY",
        )
        in_range(s, "temperature", self.temperature, 0.0, 2.0)
        int_at_least(s, "max_tokens", self.max_tokens, 1)
        opt_positive(s, "rpm", self.rpm)
        opt_positive(s, "tpm", self.tpm)
        check(
            is_number(self.timeout_s) and self.timeout_s > 0,
            f"{s}timeout_s",
            self.timeout_s,
            "a positive number of seconds",
        )
        int_at_least(s, "max_retries", self.max_retries, 0)
        int_at_least(s, "concurrency", self.concurrency, 1)
        check(
            is_number(self.outage_allowance_s) and self.outage_allowance_s > 0,
            f"{s}outage_allowance_s",
            self.outage_allowance_s,
            "a positive number of seconds (how long to wait for an endpoint that is down)",
        )
        check(isinstance(self.preflight, bool), f"{s}preflight", self.preflight, "true or false")
        for name in ("price_per_1k_prompt", "price_per_1k_completion"):
            value = getattr(self, name)
            check(is_number(value) and value >= 0, f"{s}{name}", value, "a price >= 0")
        for name in ("max_calls", "max_total_tokens"):
            if getattr(self, name) is not None:
                int_at_least(s, name, getattr(self, name), 1)
        opt_positive(s, "max_cost", self.max_cost)
        check(
            is_number(self.num_gpus) and self.num_gpus >= 0,
            f"{s}num_gpus",
            self.num_gpus,
            "a number of GPUs >= 0 (a fraction shares one)",
        )
        if self.backend == "hf":  # a local model: neither billed nor capped, say so
            for name in ("tpm", "max_calls", "max_total_tokens", "max_cost"):
                check(
                    getattr(self, name) is None,
                    f"{s}{name}",
                    getattr(self, name),
                    "null for backend 'hf' (a local model has no token limit, bill or budget)",
                    f"remove blackbox.{name}; caps apply to paid endpoints (backend openai)",
                )
        check(
            self.num_gpus == 0 or self.backend in LOCAL_BACKENDS,
            f"{s}num_gpus",
            self.num_gpus,
            "0 unless backend is 'vllm' or 'hf' (only a local model runs on this cluster's GPUs)",
            "remove blackbox.num_gpus, or set blackbox.backend: vllm",
        )
        if self.backend == "vllm":
            check(
                self.num_gpus <= 1 or self.num_gpus == int(self.num_gpus),
                f"{s}num_gpus",
                self.num_gpus,
                "a fraction of one GPU, or a whole number of GPUs (tensor parallel)",
            )
            check(
                self.base_url is None,
                f"{s}base_url",
                self.base_url,
                "null for backend 'vllm' (izero starts the server and knows its address)",
                "remove blackbox.base_url, or use backend 'openai' for a server you run yourself",
            )
