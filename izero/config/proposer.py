"""The ``proposer`` section: a separate endpoint for methods where an LLM proposes instructions.

``ape`` asks an LLM to propose instructions from demonstrations. By default that LLM is the
black box itself (as in the APE and InstructZero papers): its calls then share the black box's
rate limit, response cache and budget caps. A ``proposer`` section sends them to another
OpenAI-compatible endpoint instead, with its own limits, prices and caps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from izero.config._checks import (
    ENV_NAME_RE,
    REDACTED,
    check,
    int_at_least,
    is_number,
    opt_positive,
)

DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
#: Requests per minute across all workers (as the black box's default).
DEFAULT_RPM = 600.0
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 6
DEFAULT_CONCURRENCY = 32


@dataclass(frozen=True)
class ProposerConfig:
    """An OpenAI-compatible chat-completions endpoint that proposes instructions.

    ``base_url`` and ``model`` are required. The API key is read from the environment variable
    ``api_key_env`` at run time and never stored. Limits: ``rpm`` requests and ``tpm`` tokens
    per minute across all workers (None: no limit), ``timeout_s`` seconds per request,
    ``max_retries`` retries of a transient failure, ``concurrency`` requests in flight. Prices
    are per 1000 tokens; ``max_calls``, ``max_total_tokens`` and ``max_cost`` stop the sweep
    before the proposer spends more (None: no cap). Sampling (temperature, length, seed) is set
    per call by the method that proposes (e.g. ``method_options.ape``).
    """

    _SECTION: ClassVar[str] = "proposer."

    base_url: str | None = None
    model: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
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

    def __post_init__(self) -> None:
        s = self._SECTION
        check(
            isinstance(self.model, str) and bool(self.model.strip()),
            f"{s}model",
            self.model,
            "the model name the proposer endpoint serves",
            "set proposer.model, e.g. --set proposer.model=gpt-4o-mini, or remove the proposer "
            "section so that the black box proposes",
        )
        check(
            isinstance(self.base_url, str) and self.base_url.startswith(("http://", "https://")),
            f"{s}base_url",
            self.base_url,
            "the proposer endpoint's http:// or https:// URL",
            "set proposer.base_url, e.g. https://api.openai.com/v1 or http://127.0.0.1:8000/v1",
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
        for name in ("price_per_1k_prompt", "price_per_1k_completion"):
            value = getattr(self, name)
            check(is_number(value) and value >= 0, f"{s}{name}", value, "a price >= 0")
        for name in ("max_calls", "max_total_tokens"):
            if getattr(self, name) is not None:
                int_at_least(s, name, getattr(self, name), 1)
        opt_positive(s, "max_cost", self.max_cost)
