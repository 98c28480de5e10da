"""Options of one black-box endpoint: where it is, how to call it, its limits and budget."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from izero.errors import ConfigError

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
"""Environment variable the key is read from when none is given."""
DEFAULT_MAX_TOKENS = 64
"""Answer length cap (tokens); instruction-induction answers are short."""
DEFAULT_TIMEOUT_S = 60.0
"""Seconds one HTTP attempt may take, connect to last byte."""
DEFAULT_MAX_RETRIES = 8
"""Retries of one call after its first attempt (transient failures and 429s)."""
DEFAULT_CONCURRENCY = 64
"""Calls one worker process keeps in flight at most."""
DEFAULT_RATE_MARGIN = 0.02
"""Share of the RPM/TPM limit kept free to absorb jitter (2%: 20 ms on a 1-second window)."""
DEFAULT_LEASE_HORIZON_S = 0.5
"""Seconds of request capacity a worker leases from the shared limiter at once."""
MAX_TOKENS_PARAMS = ("max_tokens", "max_completion_tokens")
"""Names servers accept for the answer length: ``max_tokens`` (most servers, vLLM) or
``max_completion_tokens`` (OpenAI's newer models refuse ``max_tokens``; vLLM accepts both)."""
DEFAULT_BACKOFF_BASE_S = 0.25
DEFAULT_BACKOFF_CAP_S = 20.0


class Secret:
    """A string that never shows itself in repr, str, logs or error messages."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def get(self) -> str:
        """The secret value itself (only for the Authorization header)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self):
        return (Secret, (self._value,))


def _positive(name: str, value: float | None, *, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if value is None or not math.isfinite(float(value)) or float(value) <= 0:
        raise ConfigError(name, value, "a finite number > 0" + (" or None" if allow_none else ""))


@dataclass(frozen=True)
class EndpointConfig:
    """One OpenAI-compatible chat-completions endpoint.

    Limits are per endpoint, shared by every worker process: ``rpm`` (requests per minute) and
    ``tpm`` (tokens per minute, prompt + completion); ``None`` means unlimited. Prices are in
    money units per 1,000 tokens. Budget caps (``max_calls``, ``max_total_tokens``,
    ``max_cost``) stop the run before a call could exceed them. ``api_key`` is resolved from
    the environment variable ``api_key_env`` when not given and is never shown.
    ``cache_url``: what the response cache keys on instead of ``base_url``, for a server whose
    address changes from run to run but that answers alike (the simulated one, a vLLM server
    izero starts). ``max_tokens_param``: the request field that carries ``max_tokens``, one of
    :data:`MAX_TOKENS_PARAMS`. ``outage_allowance_s``: seconds to hold every call and probe an
    endpoint that answers nothing before giving up (:mod:`izero.blackbox.health`); ``None``: no
    outage detection, each call fails on its own after its retries.
    """

    base_url: str
    model: str
    api_key: Secret | str | None = field(default=None, repr=False, compare=False)
    api_key_env: str = DEFAULT_API_KEY_ENV
    temperature: float = 0.0
    max_tokens: int = DEFAULT_MAX_TOKENS
    headers: tuple[tuple[str, str], ...] | Mapping[str, str] = ()
    timeout_s: float = DEFAULT_TIMEOUT_S
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = DEFAULT_MAX_RETRIES
    price_prompt_per_1k: float = 0.0
    price_completion_per_1k: float = 0.0
    max_calls: int | None = None
    max_total_tokens: int | None = None
    max_cost: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    rate_margin: float = DEFAULT_RATE_MARGIN
    lease_horizon_s: float = DEFAULT_LEASE_HORIZON_S
    backoff_base_s: float = DEFAULT_BACKOFF_BASE_S
    backoff_cap_s: float = DEFAULT_BACKOFF_CAP_S
    extra_body: tuple[tuple[str, Any], ...] | Mapping[str, Any] = ()
    cache_url: str | None = None
    max_tokens_param: str = MAX_TOKENS_PARAMS[0]
    outage_allowance_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.base_url, str) or not self.base_url.startswith(
            ("http://", "https://")
        ):
            raise ConfigError(
                "base_url", self.base_url, "an http(s) URL such as http://127.0.0.1:8000/v1"
            )
        object.__setattr__(self, "base_url", self.base_url.rstrip("/"))
        if not self.model or not isinstance(self.model, str):
            raise ConfigError("model", self.model, "a non-empty model name")
        if isinstance(self.api_key, str):
            object.__setattr__(self, "api_key", Secret(self.api_key))
        if isinstance(self.headers, Mapping):
            object.__setattr__(self, "headers", tuple(sorted(self.headers.items())))
        if isinstance(self.extra_body, Mapping):
            object.__setattr__(self, "extra_body", tuple(sorted(self.extra_body.items())))
        if not 0.0 <= float(self.temperature) <= 2.0:
            raise ConfigError("temperature", self.temperature, "a number in [0, 2]")
        if int(self.max_tokens) < 1:
            raise ConfigError("max_tokens", self.max_tokens, "an integer >= 1")
        _positive("timeout_s", self.timeout_s, allow_none=False)
        _positive("rpm", self.rpm)
        _positive("tpm", self.tpm)
        if int(self.max_retries) < 0:
            raise ConfigError("max_retries", self.max_retries, "an integer >= 0")
        for name in ("price_prompt_per_1k", "price_completion_per_1k"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ConfigError(name, value, "a finite price >= 0")
        for name in ("max_calls", "max_total_tokens", "max_cost"):
            value = getattr(self, name)
            if value is not None and (not math.isfinite(value) or value < 0):
                raise ConfigError(name, value, "a number >= 0 or None (no cap)")
        if int(self.concurrency) < 1:
            raise ConfigError("concurrency", self.concurrency, "an integer >= 1")
        if not 0.0 <= self.rate_margin < 0.5:
            raise ConfigError("rate_margin", self.rate_margin, "a share in [0, 0.5)")
        _positive("lease_horizon_s", self.lease_horizon_s, allow_none=False)
        _positive("backoff_base_s", self.backoff_base_s, allow_none=False)
        _positive("backoff_cap_s", self.backoff_cap_s, allow_none=False)
        if self.max_tokens_param not in MAX_TOKENS_PARAMS:
            raise ConfigError(
                "max_tokens_param", self.max_tokens_param, f"one of {', '.join(MAX_TOKENS_PARAMS)}"
            )
        _positive("outage_allowance_s", self.outage_allowance_s)

    @property
    def endpoint(self) -> str:
        """``"<base_url> (model <model>)"``: how errors and logs name this endpoint."""
        return f"{self.base_url} (model {self.model})"

    def resolved(self) -> EndpointConfig:
        """A copy whose key is read now from ``api_key_env`` if it was not given."""
        if self.api_key is not None:
            return self
        value = os.environ.get(self.api_key_env)
        return replace(self, api_key=Secret(value) if value else None)

    def key(self) -> str | None:
        """The key itself, for the Authorization header only."""
        return self.api_key.get() if isinstance(self.api_key, Secret) else None

    def request_params(self) -> dict[str, Any]:
        """The sampling parameters sent with (and cached under) every call."""
        params: dict[str, Any] = {
            "temperature": float(self.temperature),
            self.max_tokens_param: int(self.max_tokens),
        }
        params.update(dict(self.extra_body))
        return params

    def call_cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        """Money for one call with these token counts."""
        return (
            prompt_tokens * self.price_prompt_per_1k
            + completion_tokens * self.price_completion_per_1k
        ) / 1000.0
