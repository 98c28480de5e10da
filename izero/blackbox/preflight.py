"""Check an endpoint with one cheap request before a sweep writes anything or pays for work.

``GET {base_url}/models`` with the key tells whether the server is there, whether it takes the
key, and whether it serves the model. A server without that route (404/405) gets a 1-token
chat completion instead. Each failure is one typed :class:`~izero.errors.BlackBoxError` line
naming the endpoint and the fix; an absent key is named as such, with its variable.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass

import aiohttp

from izero.blackbox.config import EndpointConfig
from izero.blackbox.errors import (
    BadRequestError,
    InsufficientQuotaError,
    NotFoundError,
    PermissionDeniedError,
    missing_key_error,
    rejected_key_error,
)
from izero.blackbox.health import EndpointUnavailableError

logger = logging.getLogger(__name__)

PREFLIGHT_TRIES = 3
"""Attempts at the check request before the endpoint is called unreachable."""
PREFLIGHT_WAIT_S = 1.0
"""Wait before the second attempt; it doubles."""
PREFLIGHT_TIMEOUT_S = 20.0
"""Longest one check request may take (seconds; the endpoint's timeout if shorter)."""
MAX_LISTED = 5
"""Model names quoted when the model is not among those the endpoint lists."""
_SKIP = "set blackbox.preflight: false to start anyway (the sweep then holds its calls for up to "
_SKIP += "blackbox.outage_allowance_s while the endpoint does not answer)"


@dataclass(frozen=True)
class EndpointCheck:
    """What the check found: the request that answered and the HTTP status."""

    request: str
    status: int
    listed: bool | None = None


class _Unreachable(Exception):
    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


async def check_endpoint(
    config: EndpointConfig, *, session: aiohttp.ClientSession | None = None
) -> EndpointCheck:
    """Send the cheap request(s); return what answered or raise the error that says why not.

    Raises:
        AuthenticationError: no key (the variable is named) or a rejected one.
        NotFoundError: wrong ``base_url`` or a model the endpoint does not serve.
        EndpointUnavailableError: no answer (connection refused, timeouts, 5xx) on
            :data:`PREFLIGHT_TRIES` tries.
    """
    config = config.resolved()
    own = session is None
    if session is None:
        timeout = aiohttp.ClientTimeout(total=min(config.timeout_s, PREFLIGHT_TIMEOUT_S))
        session = aiohttp.ClientSession(timeout=timeout)
    try:
        status, data = await _try(session, config, "GET", "/models", None)
        if status == 200:
            return _check_listed(config, data)
        if status in (404, 405, 501):
            body = {
                "model": config.model,
                "messages": [{"role": "user", "content": "Say OK."}],
                "max_tokens": 1,
                **{k: v for k, v in config.request_params().items() if k != "max_tokens"},
            }
            status, data = await _try(session, config, "POST", "/chat/completions", body)
            if status != 200:
                _raise_for(config, status, data, "POST /chat/completions")
            return EndpointCheck("POST /chat/completions", status)
        _raise_for(config, status, data, "GET /models")
        return EndpointCheck("GET /models", status)
    finally:
        if own:
            await session.close()


async def _try(session, config: EndpointConfig, method: str, path: str, body) -> tuple[int, str]:
    """(status, body text) of the first attempt that got an HTTP answer other than 5xx."""
    headers = {"Content-Type": "application/json", **dict(config.headers)}
    if config.key():
        headers["Authorization"] = f"Bearer {config.key()}"
    wait = PREFLIGHT_WAIT_S
    last = ""
    for attempt in range(PREFLIGHT_TRIES):
        if attempt:
            await asyncio.sleep(wait)
            wait *= 2
        try:
            async with session.request(
                method, config.base_url + path, json=body, headers=headers
            ) as resp:
                text = await resp.text(errors="replace")
                if resp.status < 500:
                    return resp.status, text
                last = f"HTTP {resp.status}"
        except asyncio.TimeoutError:
            last = "timed out"
        except (aiohttp.ClientError, OSError) as err:
            last = _redact(config, f"{type(err).__name__}: {err}")
    raise EndpointUnavailableError(
        f"the endpoint does not answer {method} {path} ({last}, {PREFLIGHT_TRIES} tries)",
        endpoint=config.endpoint,
        fix=f"check blackbox.base_url and that the server is running; {_SKIP}",
    )


def _redact(config: EndpointConfig, text: str) -> str:
    key = config.key()
    return text.replace(key, "***") if key else text


def _message(config: EndpointConfig, text: str) -> str:
    try:
        error = json.loads(text).get("error")
        if isinstance(error, dict):
            text = str(error.get("message") or text)
        elif isinstance(error, str):
            text = error
    except (ValueError, AttributeError):
        pass
    return _redact(config, text.strip())[:200]


def _check_listed(config: EndpointConfig, text: str) -> EndpointCheck:
    try:
        ids = [str(m["id"]) for m in json.loads(text).get("data", []) if "id" in m]
    except (ValueError, AttributeError, TypeError):
        ids = []
    if not ids:  # an endpoint that lists nothing parseable: the model is checked on use
        return EndpointCheck("GET /models", 200, None)
    if config.model not in ids:
        shown = ", ".join(ids[:MAX_LISTED]) + (", ..." if len(ids) > MAX_LISTED else "")
        raise NotFoundError(
            f"model '{config.model}' is not among the {len(ids)} models the endpoint lists "
            f"({shown})",
            endpoint=config.endpoint,
            status=200,
            fix="check blackbox.model; set blackbox.preflight: false for an endpoint that "
            "serves models it does not list",
        )
    return EndpointCheck("GET /models", 200, True)


def _raise_for(config: EndpointConfig, status: int, text: str, request: str) -> None:
    """Raise the error ``status`` means; return only for a 429 (rate limited: the endpoint is
    there and takes the key)."""
    detail = _message(config, text)
    endpoint = config.endpoint
    if status in (401, 403) and not config.key():
        raise missing_key_error(config.endpoint, config.api_key_env, status, detail)
    if status == 401:
        raise rejected_key_error(config.endpoint, config.api_key_env, status, detail)
    if status == 403:
        raise PermissionDeniedError(
            f"the key in {config.api_key_env} may not use this endpoint ({detail})",
            endpoint=endpoint,
            status=status,
            fix="use a key with access to this model, or choose a model the key can use",
        )
    if status == 404:
        raise NotFoundError(
            f"{request} was not found ({detail})",
            endpoint=endpoint,
            status=status,
            fix="check that blackbox.base_url ends with the API root (e.g. .../v1) and that "
            "blackbox.model is served there",
        )
    if status == 429 and "insufficient_quota" in text:
        raise InsufficientQuotaError(
            f"the account has no quota or credit left ({detail})",
            endpoint=endpoint,
            status=status,
            fix="add credit or raise the quota of this account, or use another key",
        )
    if status == 429:
        logger.info("%s: preflight %s was rate limited; the endpoint is there", endpoint, request)
        return
    raise BadRequestError(
        f"{request} was refused ({detail})",
        endpoint=endpoint,
        status=status,
        fix=f"check blackbox.model and the sampling parameters; {_SKIP}",
    )
