"""Async chat-completions client: rate-limited, retried, cached, accounted.

Works with any OpenAI-compatible server (OpenAI, vLLM, TGI, Ollama, LiteLLM, the simulated
server). Transient failures (429, 408, 409, 5xx, timeouts, dropped connections, malformed or
truncated bodies) are retried with capped exponential backoff and full jitter, honouring
``Retry-After`` / ``retry-after-ms``; errors retrying cannot fix raise a typed
:class:`~izero.errors.BlackBoxError` naming the endpoint and the fix. A call that finally fails
returns ``text=None``: it is never a wrong answer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from izero.blackbox.cache import CachedAnswer, ResponseCache, request_key
from izero.blackbox.config import MAX_TOKENS_PARAMS, EndpointConfig
from izero.blackbox.errors import (
    BadRequestError,
    ContextLengthError,
    EndpointError,
    InsufficientQuotaError,
    NotFoundError,
    PermissionDeniedError,
    missing_key_error,
    rejected_key_error,
)
from izero.blackbox.health import ANSWERED, OUTAGE_KINDS, UNSENT, HealthClient
from izero.blackbox.ratelimit import LeaseClient, Slot
from izero.errors import BlackBoxError

logger = logging.getLogger(__name__)

CHARS_PER_TOKEN_ESTIMATE = 3.0
"""Conservative characters per token for estimating a prompt before it is sent."""
TOKENS_PER_MESSAGE = 4
RETRYABLE_STATUSES = frozenset({408, 409, 425, 500, 502, 503, 504, 520, 522, 524, 529})
MAX_SERVER_MESSAGE_CHARS = 300
CONNECTOR_LIMIT_FACTOR = 2
_CONTEXT_RE = re.compile(
    r"context.length|maximum context|too many tokens|too long|greater than max_model_len", re.I
)
_LIMIT_RES = (
    re.compile(r"maximum context length is (\d+)", re.I),  # OpenAI, vLLM
    re.compile(r"max_model_len\s*[=:]?\s*(\d+)", re.I),  # vLLM, max_tokens over the context
    re.compile(r"context (?:length|window|size) (?:of|is) (\d+)", re.I),
)
_PROMPT_RES = (
    re.compile(r"(at least \d+) input tokens", re.I),  # vLLM
    re.compile(r"resulted in (\d+) tokens", re.I),  # OpenAI
    re.compile(r"requested (\d+) tokens", re.I),
)

_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


@dataclass(frozen=True)
class CallRecord:
    """One call as it happened (times are epoch seconds).

    ``status``: ``"200"``, ``"cached"``, or the last failure (an HTTP status such as ``"503"``,
    or ``"timeout"``, ``"connection"``, ``"malformed"``, ``"truncated"``). ``attempt_times``:
    when each HTTP request was sent, with ``attempt_statuses`` its outcome; they let results
    plot requests per minute against the limit.
    """

    started_at: float
    finished_at: float
    status: str
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    cached: bool
    ok: bool
    cost: float = 0.0
    attempt_times: tuple[float, ...] = ()
    attempt_statuses: tuple[str, ...] = ()


@dataclass(frozen=True)
class CallOutcome:
    """The answer text (``None`` if the call finally failed) and its record."""

    text: str | None
    record: CallRecord


class _Transient(Exception):
    def __init__(self, kind: str, retry_after: float | None = None, rate_limited: bool = False):
        super().__init__(kind)
        self.kind = kind
        self.retry_after = retry_after
        self.rate_limited = rate_limited


def estimate_prompt_tokens(messages: Sequence[Mapping[str, str]]) -> int:
    """A generous token estimate of ``messages`` before the server counts them."""
    chars = sum(len(m.get("content", "")) for m in messages)
    return math.ceil(chars / CHARS_PER_TOKEN_ESTIMATE) + TOKENS_PER_MESSAGE * len(messages) + 3


def parse_duration_s(text: str | None) -> float | None:
    """``"1s"``, ``"6m0s"``, ``"20ms"``, ``"0.5"`` -> seconds; ``None`` if unparseable."""
    if not text:
        return None
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    total, matched = 0.0, False
    for number, unit in _DURATION_RE.findall(text):
        matched = True
        total += float(number) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return total if matched else None


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asks to wait: ``retry-after-ms``, else ``Retry-After`` seconds."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            return None
    return None


def _float_header(headers: Mapping[str, str], name: str) -> float | None:
    try:
        return float(headers[name])
    except (KeyError, ValueError):
        return None


@dataclass
class ClientStats:
    """Counters of one client (one worker process)."""

    calls: int = 0
    cache_hits: int = 0
    attempts: int = 0
    rate_limited: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    by_status: dict[str, int] = field(default_factory=dict)


class ChatClient:
    """Calls one endpoint. Needs a running event loop; create and use it inside one.

    ``lease``: this process's :class:`LeaseClient` (shared limiter); ``cache``: a
    :class:`ResponseCache` or ``None`` (no cache); ``session``: an aiohttp session or ``None``
    (one is created with a connector sized to ``config.concurrency``); ``rng``: jitter source;
    ``health``: this process's :class:`~izero.blackbox.health.HealthClient` (``None``: no
    outage detection, each call fails on its own after its retries).
    """

    def __init__(
        self,
        config: EndpointConfig,
        *,
        lease: LeaseClient,
        cache: ResponseCache | None = None,
        session: aiohttp.ClientSession | None = None,
        rng: random.Random | None = None,
        health: HealthClient | None = None,
    ):
        self.config = config.resolved()
        self.lease = lease
        self.health = health
        self.cache = cache
        self._session = session
        self._own_session = session is None
        self._rng = rng or random.Random()
        self._inflight: dict[str, asyncio.Future] = {}
        self._semaphore = asyncio.Semaphore(self.config.concurrency)
        self._known_limits: tuple[float | None, float | None] = (None, None)
        self._limits_stated = False
        self._sending = 0
        self._sent_all = asyncio.Event()
        self._sent_all.set()
        self.stats = ClientStats()
        self._url = self.config.base_url + "/chat/completions"
        self._params = self.config.request_params()
        self._served: asyncio.Task | None = None

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", **dict(self.config.headers)}
        key = self.config.key()
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self.config.concurrency * CONNECTOR_LIMIT_FACTOR, limit_per_host=0
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
            )
        return self._session

    async def close(self, *, drain_s: float | None = None) -> None:
        """Stop sending, let the requests already sent come back (their answers are paid for:
        they are cached, not dropped; at most ``drain_s`` seconds, default the request timeout),
        flush limiter bookings and close the HTTP session if this client made it."""
        stopped = BlackBoxError(
            f"the client for {self.config.endpoint} is closing; no new requests are sent"
        )
        if self.lease.fatal is None:
            self.lease.fatal = stopped
        if self.health is not None:
            self.health.close(stopped)
        if self._sending:
            wait = self.config.timeout_s if drain_s is None else drain_s
            logger.info(
                "%s: waiting up to %.0fs for %d requests already sent",
                self.config.endpoint,
                wait,
                self._sending,
            )
            try:
                await asyncio.wait_for(self._sent_all.wait(), timeout=wait)
            except asyncio.TimeoutError:
                logger.warning(
                    "%s: %d requests sent were not answered before closing",
                    self.config.endpoint,
                    self._sending,
                )
        try:
            await self.lease.close()
        finally:
            if self._session is not None and self._own_session:
                await self._session.close()
                self._session = None

    def _redact(self, text: str) -> str:
        key = self.config.key()
        return text.replace(key, "***") if key else text

    async def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        *,
        params: Mapping[str, Any] | None = None,
    ) -> CallOutcome:
        """One chat completion: from the cache if this exact request was paid for before.

        ``params``: sampling parameters of this call (e.g. ``temperature``, ``max_tokens``,
        ``seed``) over the endpoint's own; they are sent in the body and are part of the cache
        key, so calls that differ only in them are distinct requests.
        """
        params = {**self._params, **params} if params else self._params
        key = request_key(
            base_url=self.config.cache_url or self.config.base_url,
            model=self.config.model,
            params=params,
            messages=messages,
        )
        started = time.time()
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return self._cached(hit, started)
        if key in self._inflight:  # the same request already on its way in this process
            outcome: CallOutcome = await asyncio.shield(self._inflight[key])
            if outcome.text is None:
                return outcome
            return self._cached(
                CachedAnswer(
                    outcome.text, outcome.record.prompt_tokens, outcome.record.completion_tokens
                ),
                started,
            )
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            async with self._semaphore:
                outcome = await self._call(key, list(messages), started, params)
            future.set_result(outcome)
            return outcome
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved
            raise
        finally:
            del self._inflight[key]

    def _cached(self, hit: CachedAnswer, started: float) -> CallOutcome:
        self.stats.cache_hits += 1
        record = CallRecord(
            started_at=started,
            finished_at=time.time(),
            status="cached",
            attempts=0,
            prompt_tokens=hit.prompt_tokens,
            completion_tokens=hit.completion_tokens,
            cached=True,
            ok=True,
        )
        return CallOutcome(hit.text, record)

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.config.backoff_cap_s * 4)
        cap = min(self.config.backoff_cap_s, self.config.backoff_base_s * (2**attempt))
        return self._rng.uniform(0.0, cap)  # full jitter

    async def _call(
        self, key: str, messages: list, started: float, params: Mapping[str, Any]
    ) -> CallOutcome:
        max_tokens = int(params.get("max_tokens") or self.config.max_tokens)
        est_prompt = estimate_prompt_tokens(messages)
        est_tokens = est_prompt + max_tokens
        est_cost = self.config.call_cost(est_prompt, max_tokens)
        body = {"model": self.config.model, "messages": messages, **params}
        times: list[float] = []
        statuses: list[str] = []
        last = "unknown"
        failures = 0  # failed attempts that count against max_retries
        failed_at: float | None = None  # monotonic send time of the last failed attempt
        asked = False  # whether this call asked for the health verdict on its last failure
        while True:
            probe = False
            if self.health is not None:
                # during an outage the call is held here and keeps its retries: an attempt
                # that failed while the endpoint was down is the outage's, not the call's
                probe = await self.health.ready()
                if failed_at is not None and self.health.outage_seen_since(failed_at):
                    failures, failed_at, asked = failures - 1, None, False
            if failures > self.config.max_retries:
                if self.health is not None and last in OUTAGE_KINDS and not asked:
                    asked = True  # an outage may be declared in a moment: then it is held
                    await self.health.verdict()
                    continue
                break
            try:
                slot = await self.lease.acquire(est_tokens=est_tokens, est_cost=est_cost)
            except BaseException:
                self._report(UNSENT, probe)
                raise
            times.append(time.time())
            failed_at = time.monotonic()
            self.stats.attempts += 1
            self._sending += 1
            self._sent_all.clear()
            try:
                # shielded: a call cancelled while its request is on its way (a stopped
                # sweep) lets the answer land in the cache instead of dropping what is paid for
                text, usage = await asyncio.shield(self._sent(body, slot, key))
            except _Transient as err:
                last = err.kind
                statuses.append(err.kind)
                self._count(err.kind)
                self._report(err.kind, probe)
                failures += 1
                if err.rate_limited:
                    self.stats.rate_limited += 1
                    await self.lease.on_rate_limited(err.retry_after)
                else:
                    wait = self._backoff(failures - 1, err.retry_after)
                    logger.debug(
                        "%s: attempt %d failed (%s); retrying in %.2fs",
                        self.config.endpoint,
                        len(times),
                        err.kind,
                        wait,
                    )
                    await asyncio.sleep(wait)
                continue
            except EndpointError as err:
                statuses.append(str(err.status) if err.status else type(err).__name__)
                self._report(ANSWERED, probe)  # the server answered, if not as hoped
                await self.lease.stop_all(err)
                raise
            except BaseException:
                self._report(UNSENT, probe)
                raise
            self._report(ANSWERED, probe)
            prompt_tokens, completion_tokens = usage
            cost = self.config.call_cost(prompt_tokens, completion_tokens)
            statuses.append("200")
            self._count("200")
            self.stats.calls += 1
            self.stats.prompt_tokens += prompt_tokens
            self.stats.completion_tokens += completion_tokens
            self.stats.cost += cost
            record = CallRecord(
                started_at=started,
                finished_at=time.time(),
                status="200",
                attempts=len(times),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                cached=False,
                ok=True,
                cost=cost,
                attempt_times=tuple(times),
                attempt_statuses=tuple(statuses),
            )
            return CallOutcome(text, record)
        self.stats.failed += 1
        logger.warning(
            "%s: call failed after %d attempts (last: %s); recorded as failed, not wrong",
            self.config.endpoint,
            len(times),
            last,
        )
        record = CallRecord(
            started_at=started,
            finished_at=time.time(),
            status=last,
            attempts=len(times),
            prompt_tokens=0,
            completion_tokens=0,
            cached=False,
            ok=False,
            attempt_times=tuple(times),
            attempt_statuses=tuple(statuses),
        )
        return CallOutcome(None, record)

    def _report(self, kind: str, probe: bool) -> None:
        if self.health is not None:
            self.health.record(kind, probe=probe)

    def _count(self, status: str) -> None:
        self.stats.by_status[status] = self.stats.by_status.get(status, 0) + 1

    async def _sent(self, body: dict, slot: Slot, key: str) -> tuple[str, tuple[int, int]]:
        """One attempt, counted while it is on its way (see :meth:`close`); its answer goes
        into the cache as soon as it is paid for."""
        try:
            text, usage = await self._attempt(body, slot)
            if self.cache is not None:
                self.cache.put(key, CachedAnswer(text, *usage), model=self.config.model)
            return text, usage
        finally:
            self._sending -= 1
            if not self._sending:
                self._sent_all.set()

    async def _attempt(self, body: dict, slot: Slot) -> tuple[str, tuple[int, int]]:
        session = self._get_session()
        sent = False
        try:
            async with session.post(self._url, json=body, headers=self._headers()) as resp:
                sent = True
                await self._observe_headers(resp.headers)
                if resp.status != 200:
                    await self._raise_for_status(resp)
                raw = await resp.read()
        except _Transient:
            self.lease.release(slot, sent=True, paid=False)
            raise
        except EndpointError:
            self.lease.release(slot, sent=True, paid=False)
            raise
        except asyncio.TimeoutError as err:
            self.lease.release(slot, sent=True, paid=False)
            raise _Transient("timeout") from err
        except aiohttp.ClientPayloadError as err:
            self.lease.release(slot, sent=True, paid=False)
            raise _Transient("truncated") from err
        except (aiohttp.ClientConnectionError, aiohttp.ClientResponseError, OSError) as err:
            self.lease.release(slot, sent=True, paid=False)
            raise _Transient("connection" if not sent else "truncated") from err
        try:
            data = json.loads(raw)
            message = data["choices"][0]["message"]
            text = message.get("content") or ""
            if not isinstance(text, str):
                raise TypeError("content is not a string")
        except (ValueError, KeyError, IndexError, TypeError) as err:
            self.lease.release(slot, sent=True, paid=False)
            body_text = raw.strip()
            truncated = body_text.startswith(b"{") and not body_text.endswith(b"}")
            kind = "truncated" if truncated else "malformed"
            raise _Transient(kind) from err
        usage = data.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or estimate_prompt_tokens(body["messages"]))
        completion_tokens = int(
            usage.get("completion_tokens") or math.ceil(len(text) / CHARS_PER_TOKEN_ESTIMATE)
        )
        self.lease.release(
            slot,
            sent=True,
            paid=True,
            tokens=prompt_tokens + completion_tokens,
            cost=self.config.call_cost(prompt_tokens, completion_tokens),
        )
        return text.strip(), (prompt_tokens, completion_tokens)

    async def _observe_headers(self, headers: Mapping[str, str]) -> None:
        limit_req = _float_header(headers, "x-ratelimit-limit-requests")
        limit_tok = _float_header(headers, "x-ratelimit-limit-tokens")
        remaining = _float_header(headers, "x-ratelimit-remaining-requests")
        new_limits = (
            limit_req
            if limit_req and (self.config.rpm is None or limit_req < self.config.rpm)
            else None,
            limit_tok
            if limit_tok and (self.config.tpm is None or limit_tok < self.config.tpm)
            else None,
        )
        pause = None
        if remaining is not None and remaining <= 0:
            pause = parse_duration_s(headers.get("x-ratelimit-reset-requests"))
        # the first stated limits go to the limiter even when they are the configured ones:
        # a server that states its limit makes 429s a matter of pacing, not of a lower limit
        first = not self._limits_stated and bool(limit_req or limit_tok)
        if (any(new_limits) and new_limits != self._known_limits) or pause or first:
            self._limits_stated = self._limits_stated or first
            if any(new_limits):
                self._known_limits = new_limits
            await self.lease.on_hint(
                limit_req if first else new_limits[0], limit_tok if first else new_limits[1], pause
            )

    async def _raise_for_status(self, resp: aiohttp.ClientResponse) -> None:
        status = resp.status
        try:
            raw = await resp.read()
        except (aiohttp.ClientError, asyncio.TimeoutError):
            raw = b""
        code = kind = param = ""
        message = raw.decode("utf-8", "replace")
        try:
            error = json.loads(raw).get("error") or {}
            if isinstance(error, dict):
                code = str(error.get("code") or "")
                kind = str(error.get("type") or "")
                param = str(error.get("param") or "")
                message = str(error.get("message") or message)
            elif isinstance(error, str):
                message = error
        except (ValueError, AttributeError):
            pass
        message = self._redact(message)[:MAX_SERVER_MESSAGE_CHARS]
        endpoint = self.config.endpoint
        if status == 429:
            if "insufficient_quota" in (code, kind):
                raise InsufficientQuotaError(
                    f"the account has no quota or credit left ({message})",
                    endpoint=endpoint,
                    status=status,
                    fix="add credit or raise the quota of this account, or use another key; "
                    "answers already paid for are cached and will not be paid again",
                )
            raise _Transient("429", retry_after_s(resp.headers), rate_limited=True)
        if status in RETRYABLE_STATUSES:
            raise _Transient(str(status), retry_after_s(resp.headers))
        if status in (401, 403) and not self.config.key():
            raise missing_key_error(endpoint, self.config.api_key_env, status, message)
        if status == 401:
            raise rejected_key_error(endpoint, self.config.api_key_env, status, message)
        if status == 403:
            raise PermissionDeniedError(
                f"the key may not use this model or endpoint ({message})",
                endpoint=endpoint,
                status=status,
                fix="use a key with access to this model, or choose a model the key can use",
            )
        if status == 404:
            served = await self.served_models()
            if served and self.config.model not in served:
                names = ", ".join(served)
                raise NotFoundError(
                    f"the model {self.config.model!r} is not served here; GET /models lists: "
                    f"{names}",
                    endpoint=endpoint,
                    status=status,
                    fix=f"set the model name (blackbox.model, --model) to one of: {names}",
                )
            raise NotFoundError(
                f"not found ({message})",
                endpoint=endpoint,
                status=status,
                fix="check that base_url ends with the API root (e.g. .../v1) and that the "
                f"model exists (GET {self.config.base_url}/models lists them)",
            )
        if status in (400, 413, 422) and (
            code == "context_length_exceeded" or _CONTEXT_RE.search(message)
        ):
            raise context_length_error(message, param=param, endpoint=endpoint, status=status)
        unsupported = code == "unsupported_parameter" or "supported" in message.lower()
        if status == 400 and param in MAX_TOKENS_PARAMS and unsupported:
            other = next(p for p in MAX_TOKENS_PARAMS if p != param)
            raise BadRequestError(
                f"the server does not accept {param!r} ({message})",
                endpoint=endpoint,
                status=status,
                fix=f"send the answer length as {other!r} (blackbox.max_tokens_param: {other})",
            )
        raise BadRequestError(
            f"the server refused the request ({message})",
            endpoint=endpoint,
            status=status,
            fix="check the model name and the sampling parameters (extra_body) this server accepts",
        )

    async def served_models(self) -> list[str]:
        """The model names ``GET /models`` lists (asked once per client; empty if it fails)."""
        if self._served is None:
            self._served = asyncio.ensure_future(self._fetch_served_models())
        return await asyncio.shield(self._served)

    async def _fetch_served_models(self) -> list[str]:
        headers = {k: v for k, v in self._headers().items() if k != "Content-Type"}
        try:
            async with self._get_session().get(
                self.config.base_url + "/models", headers=headers
            ) as resp:
                if resp.status != 200:
                    return []
                data = json.loads(await resp.read())
            return [str(m["id"]) for m in data["data"]]
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, KeyError, TypeError):
            return []


def context_length_error(
    message: str, *, param: str, endpoint: str, status: int
) -> ContextLengthError:
    """The stop for a request longer than the model's context, naming the limit and the fix."""
    limit = next((m.group(1) for r in _LIMIT_RES if (m := r.search(message))), None)
    context = (
        f"the model's context of {limit} tokens" if limit else f"the model's context ({message})"
    )
    bigger = (
        "serve the model with a longer context (a bigger max-model-len; "
        "blackbox.vllm.max_model_len when izero starts the vLLM server)"
    )
    if param in MAX_TOKENS_PARAMS:
        return ContextLengthError(
            f"the answer length ({param}) does not fit {context}",
            endpoint=endpoint,
            status=status,
            fix=f"lower blackbox.max_tokens (answers are short: 16-64 is plenty), or {bigger}",
        )
    prompt = next((m.group(1) for r in _PROMPT_RES if (m := r.search(message))), None)
    has = f" (the prompt has {prompt} tokens)" if prompt else ""
    return ContextLengthError(
        f"the prompt does not fit {context}{has}",
        endpoint=endpoint,
        status=status,
        fix="shorten the prompt (shorter demos or fewer examples in it, a shorter instruction: "
        "generator.max_new_tokens, shorter task inputs, a lower blackbox.max_tokens), or " + bigger,
    )
