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
class BlackBoxConfig:
    """The black-box LLM that answers under each instruction.

    ``backend``: ``simulated`` (offline, :class:`SimulatedServerConfig`), ``openai`` (any
    OpenAI-compatible chat-completions endpoint at ``base_url``; needs ``model``) or ``hf`` (a
    local Hugging Face ``model`` in a Ray actor). The API key is read from the environment
    variable ``api_key_env`` at run time and never stored. Limits: ``rpm`` requests and ``tpm``
    tokens per minute across all workers (None: no limit), ``timeout_s`` seconds per request,
    ``max_retries`` retries of a transient failure, ``concurrency`` requests in flight. Prices
    are per 1000 tokens; ``max_calls``, ``max_total_tokens`` and ``max_cost`` stop a sweep
    before it spends more (None: no cap). ``num_gpus`` (backend ``hf`` only): GPUs for the
    model's actor, 0 = CPU; a fraction such as 0.5 shares a GPU with a generator actor.
    ``outage_allowance_s``: how long an endpoint may answer nothing (every attempt failing
    with connection errors, timeouts or 5xx) while every call is held and the endpoint probed
    with backoff, before the sweep stops (it resumes later without repaying anything).
    ``preflight``: before anything is written, check that the endpoint answers a cheap request
    (``GET /models``, else a 1-token completion) with the key; false for an endpoint that
    refuses both.
    """

    _SECTION: ClassVar[str] = "blackbox."

    backend: Literal["simulated", "openai", "hf"] = DEFAULT_BACKEND
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    temperature: float = DEFAULT_TEMPERATURE
    max_tokens: int = DEFAULT_MAX_TOKENS
    rpm: float | None = DEFAULT_RPM
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

    def __post_init__(self) -> None:
        s = self._SECTION
        if self.backend in ("openai", "hf"):
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
            self.num_gpus == 0 or self.backend == "hf",
            f"{s}num_gpus",
            self.num_gpus,
            "0 unless backend is 'hf' (only a local model runs on this cluster's GPUs)",
            "remove blackbox.num_gpus, or set blackbox.backend: hf",
        )
