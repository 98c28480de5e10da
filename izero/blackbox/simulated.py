"""An offline OpenAI-compatible endpoint on 127.0.0.1 for the demo, tests and benchmarks.

It answers the zero-shot task queries of :mod:`izero.blackbox.prompts` (under any of the
configured ``query_templates``) like a model that
follows instructions imperfectly: for an input it knows (from the ``Task`` objects given) it
answers correctly with probability ``floor + (ceiling - floor) * relevance``, where relevance
is the overlap of the instruction's words with the task's keywords (or its annotations), and
deterministically per ``(seed, instruction, input)``. It reports realistic ``usage``, waits a
configurable latency, enforces RPM/TPM limits over a sliding window (429 with ``Retry-After``,
``retry-after-ms``, ``x-ratelimit-*`` headers and OpenAI error JSON), injects faults (5xx,
hangs, malformed or truncated bodies, dropped connections), can play an account out of quota
(429 ``insufficient_quota``) and rejects a wrong key with 401. Every request is counted with
its arrival time, and every answered one with its tokens and a digest of the request
(``/_stats`` and :meth:`SimulatedServer.stats`: a digest answered twice is a call paid twice).
Prompts in APE's forward template get proposed instructions instead
(:mod:`izero.blackbox.simulated_proposer`).

Run it standalone with ``python -m izero.blackbox.simulated --tasks sum,diff --rpm 600``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import hashlib
import json
import logging
import math
import multiprocessing
import random
import re
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from izero.blackbox.prompts import DEFAULT_QUERY, QueryTemplate
from izero.errors import ConfigError
from izero.tasks.types import Task

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MODEL = "izero-sim"
FAULT_KINDS = ("500", "502", "503", "408", "409", "hang", "malformed", "truncated", "drop")
RELEVANCE_SATURATION = 3
"""Keywords an instruction must mention to count as fully describing the task."""
TOKEN_RE = re.compile(r"\w+|[^\w\s]")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "of",
        "to",
        "and",
        "or",
        "in",
        "on",
        "for",
        "with",
        "is",
        "are",
        "be",
        "it",
        "its",
        "this",
        "that",
        "as",
        "by",
        "from",
        "at",
        "into",
        "each",
        "given",
        "word",
        "words",
        "input",
        "output",
        "answer",
        "write",
        "return",
    ]
)
UNKNOWN_ANSWER = "I am not sure."


def count_tokens(text: str) -> int:
    """The simulated tokenizer: words and punctuation marks."""
    return len(TOKEN_RE.findall(text))


def _stem(word: str) -> str:
    word = word.lower()
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _words_of(text: str) -> list[str]:
    """The content words of ``text``, lower-cased, in order (stopwords left out)."""
    return [w.lower() for w in re.findall(r"[A-Za-z]+", text) if w.lower() not in STOPWORDS]


def _keywords_of(text: str) -> set[str]:
    return {_stem(w) for w in _words_of(text)}


def _unit(*parts: object) -> float:
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class SimulatedOptions:
    """Behaviour of the simulated server.

    ``latency_s`` (+ up to ``latency_jitter_s``): seconds before answering. ``rpm``/``tpm``:
    limits per minute, enforced over a sliding ``window_s``-second window as
    ``rpm * window_s / 60`` requests (so ``window_s=1`` is "per second"); ``None`` = none.
    ``fault_rates``: kind -> probability per admitted request (kinds in ``FAULT_KINDS``);
    ``fault_script``: faults for the first admitted requests in order (``"ok"`` = none).
    ``api_key``: the key required (``None`` = any). ``insufficient_quota``: every call gets
    429 ``insufficient_quota``. ``p_floor``/``p_ceiling``: chance of a correct answer for an
    unrelated / a fully descriptive instruction. ``limit_headers=False``: no ``x-ratelimit-*``
    headers (like many self-hosted servers and proxies): a client learns the limit from 429s.
    ``query_templates``: the query templates the server understands (the user message is
    parsed with each in turn; a message none of them parses gets an "unsure" answer).
    ``refuse_max_tokens``: answer a request carrying ``max_tokens`` with OpenAI's 400
    ``unsupported_parameter`` (its newer models want ``max_completion_tokens``).
    """

    seed: int = 0
    model: str = DEFAULT_MODEL
    latency_s: float = 0.02
    latency_jitter_s: float = 0.0
    rpm: float | None = None
    tpm: float | None = None
    window_s: float = 60.0
    fault_rates: tuple[tuple[str, float], ...] | Mapping[str, float] = ()
    fault_script: tuple[str, ...] = ()
    hang_s: float = 30.0
    api_key: str | None = field(default=None, repr=False)
    insufficient_quota: bool = False
    p_floor: float = 0.15
    p_ceiling: float = 0.95
    max_context_tokens: int | None = None
    limit_headers: bool = True
    query_templates: tuple[QueryTemplate, ...] = (DEFAULT_QUERY,)
    refuse_max_tokens: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "query_templates", tuple(self.query_templates))
        if not self.query_templates or not all(
            isinstance(t, QueryTemplate) for t in self.query_templates
        ):
            raise ConfigError(
                "query_templates", self.query_templates, "one or more QueryTemplate objects"
            )
        if isinstance(self.fault_rates, Mapping):
            object.__setattr__(self, "fault_rates", tuple(sorted(self.fault_rates.items())))
        for kind, rate in self.fault_rates:
            if kind not in FAULT_KINDS:
                raise ConfigError("fault_rates", kind, f"one of {FAULT_KINDS}")
            if not 0.0 <= rate <= 1.0:
                raise ConfigError(f"fault_rates[{kind}]", rate, "a probability in [0, 1]")
        if sum(rate for _, rate in self.fault_rates) > 1.0:
            raise ConfigError("fault_rates", self.fault_rates, "probabilities summing to <= 1")
        for kind in self.fault_script:
            if kind != "ok" and kind not in FAULT_KINDS:
                raise ConfigError("fault_script", kind, f"'ok' or one of {FAULT_KINDS}")
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(name, value, "a number > 0 or None")
        if self.window_s <= 0 or self.latency_s < 0 or self.latency_jitter_s < 0:
            raise ConfigError("window_s/latency_s", (self.window_s, self.latency_s), ">= 0")
        if not 0.0 <= self.p_floor <= self.p_ceiling <= 1.0:
            raise ConfigError(
                "p_floor/p_ceiling",
                (self.p_floor, self.p_ceiling),
                "0 <= p_floor <= p_ceiling <= 1",
            )


@dataclass
class _Known:
    task: str
    answers: tuple[str, ...]


class SimulatedModel:
    """The answering logic (no HTTP): which answer a query gets.

    ``tasks``: every task whose examples the model knows; ``keywords``: optional task name ->
    words that describe it (default: the words of its annotations, else of its name).
    """

    def __init__(
        self,
        tasks: Sequence[Task],
        *,
        keywords: Mapping[str, Sequence[str]] | None = None,
        seed: int = 0,
        p_floor: float = 0.15,
        p_ceiling: float = 0.95,
    ):
        self.seed = seed
        self.p_floor = p_floor
        self.p_ceiling = p_ceiling
        self.lookup: dict[str, list[_Known]] = collections.defaultdict(list)
        self.keywords: dict[str, set[str]] = {}
        self.words: dict[str, tuple[str, ...]] = {}  # the keywords as written, for proposals
        self.outputs: dict[str, list[str]] = {}
        keywords = keywords or {}
        for task in tasks:
            if task.name in keywords:
                texts = tuple(keywords[task.name])
            elif task.annotations:
                texts = task.annotations
            else:
                texts = (task.name.replace("_", " "),)
            self.words[task.name] = tuple(dict.fromkeys(w for t in texts for w in _words_of(t)))
            self.keywords[task.name] = {_stem(w) for w in self.words[task.name]}
            outputs = []
            for example in (*task.induce, *task.execute):
                entries = self.lookup[example.input]
                if not any(k.task == task.name for k in entries):
                    entries.append(_Known(task.name, tuple(example.answers)))
                outputs.append(example.output)
            self.outputs[task.name] = sorted(set(outputs))

    def relevance(self, instruction: str, task: str) -> float:
        """Share of the task's keywords the instruction mentions (saturating), in [0, 1]."""
        words = self.keywords.get(task) or set()
        if not words:
            return 0.0
        hits = len(words & _keywords_of(instruction))
        return min(1.0, hits / min(len(words), RELEVANCE_SATURATION))

    def p_correct(self, instruction: str, task: str) -> float:
        return self.p_floor + (self.p_ceiling - self.p_floor) * self.relevance(instruction, task)

    def answer(self, instruction: str, example_input: str) -> str:
        """The deterministic answer to one query."""
        entries = self.lookup.get(example_input)
        if not entries:
            return UNKNOWN_ANSWER
        known = max(entries, key=lambda k: (self.relevance(instruction, k.task), k.task))
        u = _unit(self.seed, "correct", instruction, example_input)
        if u < self.p_correct(instruction, known.task):
            return known.answers[0]
        return self._wrong(instruction, example_input, known)

    def _wrong(self, instruction: str, example_input: str, known: _Known) -> str:
        answer = known.answers[0]
        accepted = {a.strip().lower() for a in known.answers}
        try:
            number = float(answer)
        except ValueError:
            number = None
        if number is not None:
            offset = 1 + int(_unit(self.seed, "offset", instruction, example_input) * 9)
            value = number + offset
            return str(int(value)) if value == int(value) else str(value)
        others = [o for o in self.outputs.get(known.task, []) if o.strip().lower() not in accepted]
        if others:
            pick = int(_unit(self.seed, "other", instruction, example_input) * len(others))
            return others[pick]
        return example_input


@dataclass
class _Record:
    t: float
    status: int
    fault: str
    tokens: int
    key: str = ""


class _Window:
    """Sliding-window counter: ``limit`` units per ``window_s`` seconds."""

    def __init__(self, limit: float, window_s: float):
        self.limit = limit
        self.window_s = window_s
        self.events: collections.deque[tuple[float, float]] = collections.deque()
        self.total = 0.0

    def _trim(self, now: float) -> None:
        while self.events and self.events[0][0] <= now - self.window_s:
            self.total -= self.events.popleft()[1]

    def fits(self, now: float, amount: float) -> bool:
        self._trim(now)
        return self.total + amount <= self.limit + 1e-9

    def add(self, now: float, amount: float) -> None:
        self.events.append((now, amount))
        self.total += amount

    def wait_s(self, now: float, amount: float) -> float:
        """Seconds until ``amount`` more fits."""
        self._trim(now)
        excess = self.total + amount - self.limit
        for t, size in self.events:
            excess -= size
            if excess <= 1e-9:
                return max(0.0, t + self.window_s - now)
        return self.window_s

    def reset_s(self, now: float, amount: float = 1.0) -> float:
        """What ``x-ratelimit-reset-*`` reports: seconds until ``amount`` more fits when the
        window is full, else until it is empty again."""
        self._trim(now)
        if not self.fits(now, amount):
            return self.wait_s(now, amount)
        return max(0.0, self.events[-1][0] + self.window_s - now) if self.events else 0.0

    def remaining(self, now: float) -> float:
        self._trim(now)
        return max(0.0, self.limit - self.total)


class _App:
    """The aiohttp application state of one simulated server."""

    def __init__(self, model: SimulatedModel, options: SimulatedOptions):
        from izero.blackbox.simulated_proposer import SimulatedProposer

        self.model = model
        self.options = options
        self.proposer = SimulatedProposer(model, seed=options.seed)  # APE's proposal prompts
        self.records: list[_Record] = []
        self.rng = random.Random(options.seed)
        self.admitted = 0
        scale = options.window_s / 60.0
        self.req_window = (
            _Window(max(1.0, math.floor(options.rpm * scale)), options.window_s)
            if options.rpm
            else None
        )
        self.tok_window = _Window(options.tpm * scale, options.window_s) if options.tpm else None
        # what the x-ratelimit-* headers report: the per-minute view
        self.req_minute = _Window(options.rpm, 60.0) if options.rpm else None
        self.tok_minute = _Window(options.tpm, 60.0) if options.tpm else None

    def build(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/_stats", self.stats_handler)
        return app

    def stats(self) -> dict[str, Any]:
        by_status: dict[str, int] = collections.Counter(str(r.status) for r in self.records)
        faults = collections.Counter(r.fault for r in self.records if r.fault)
        return {
            "n_requests": len(self.records),
            "by_status": dict(by_status),
            "faults": dict(faults),
            "times": [r.t for r in self.records],
            "ok_times": [r.t for r in self.records if r.status == 200 and not r.fault],
            "statuses": [r.status for r in self.records],
            "tokens": sum(r.tokens for r in self.records if r.status == 200),
            "ok_tokens": [r.tokens for r in self.records if r.status == 200 and not r.fault],
            "ok_keys": [r.key for r in self.records if r.status == 200 and not r.fault],
        }

    async def stats_handler(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def models(self, request: web.Request) -> web.Response:
        key = self.options.api_key
        if key is not None and request.headers.get("Authorization", "") != f"Bearer {key}":
            return self._error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        return web.json_response(
            {
                "object": "list",
                "data": [{"id": self.options.model, "object": "model", "owned_by": "izero"}],
            }
        )

    def _limit_headers(self, now: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        if not self.options.limit_headers:
            return headers
        if self.req_minute is not None:
            headers["x-ratelimit-limit-requests"] = str(int(self.options.rpm))
            headers["x-ratelimit-remaining-requests"] = str(int(self.req_minute.remaining(now)))
            headers["x-ratelimit-reset-requests"] = f"{self.req_minute.reset_s(now):.3f}s"
        if self.tok_minute is not None:
            headers["x-ratelimit-limit-tokens"] = str(int(self.options.tpm))
            headers["x-ratelimit-remaining-tokens"] = str(int(self.tok_minute.remaining(now)))
            headers["x-ratelimit-reset-tokens"] = f"{self.tok_minute.reset_s(now):.3f}s"
        return headers

    @staticmethod
    def _error(status: int, message: str, kind: str, code: str | None, headers=None):
        return web.json_response(
            {"error": {"message": message, "type": kind, "param": None, "code": code}},
            status=status,
            headers=headers,
        )

    async def chat(self, request: web.Request) -> web.StreamResponse:
        now = time.time()
        record = _Record(now, 0, "", 0)
        self.records.append(record)
        opts = self.options
        if opts.api_key is not None:
            auth = request.headers.get("Authorization", "")
            if auth != f"Bearer {opts.api_key}":
                record.status = 401
                return self._error(
                    401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
                )
        if opts.insufficient_quota:
            record.status = 429
            return self._error(
                429,
                "You exceeded your current quota, please check your plan and billing details.",
                "insufficient_quota",
                "insufficient_quota",
            )
        try:
            body = await request.json()
            messages = body["messages"]
            prompt = sum(count_tokens(m["content"]) + 4 for m in messages) + 3
            max_tokens = int(body.get("max_tokens") or body.get("max_completion_tokens") or 256)
        except (ValueError, KeyError, TypeError):
            record.status = 400
            return self._error(400, "Invalid request body.", "invalid_request_error", None)
        if body.get("model") != opts.model:
            record.status = 404
            return self._error(
                404,
                f"The model `{body.get('model')}` does not exist.",
                "invalid_request_error",
                "model_not_found",
            )
        if opts.refuse_max_tokens and "max_tokens" in body:
            record.status = 400
            return web.json_response(
                {
                    "error": {
                        "message": "Unsupported parameter: 'max_tokens' is not supported with "
                        "this model. Use 'max_completion_tokens' instead.",
                        "type": "invalid_request_error",
                        "param": "max_tokens",
                        "code": "unsupported_parameter",
                    }
                },
                status=400,
            )
        if opts.max_context_tokens is not None and prompt + max_tokens > opts.max_context_tokens:
            record.status = 400
            return self._error(
                400,
                f"This model's maximum context length is {opts.max_context_tokens} tokens. "
                f"However, you requested {prompt + max_tokens} tokens.",
                "invalid_request_error",
                "context_length_exceeded",
            )
        text = self.proposer.reply(messages, body) or self._answer(messages)
        completion = min(count_tokens(text), max_tokens)
        tokens = prompt + completion
        mono = time.monotonic()
        waits = []
        if self.req_window is not None and not self.req_window.fits(mono, 1):
            waits.append(self.req_window.wait_s(mono, 1))
        if self.tok_window is not None and not self.tok_window.fits(mono, tokens):
            waits.append(self.tok_window.wait_s(mono, tokens))
        if waits:
            record.status = 429
            wait = max(waits)
            headers = {
                "retry-after-ms": str(math.ceil(wait * 1000)),
                "Retry-After": str(max(1, math.ceil(wait))),
                **self._limit_headers(mono),
            }
            which = (
                "requests" if self.req_window and not self.req_window.fits(mono, 1) else ("tokens")
            )
            return self._error(
                429,
                f"Rate limit reached for {opts.model} on {which} per min. Please try "
                f"again in {wait:.3f}s.",
                which,
                "rate_limit_exceeded",
                headers,
            )
        for window, amount in (
            (self.req_window, 1),
            (self.req_minute, 1),
            (self.tok_window, tokens),
            (self.tok_minute, tokens),
        ):
            if window is not None:
                window.add(mono, amount)
        fault = self._fault()
        record.fault = fault
        headers = self._limit_headers(mono)
        delay = opts.latency_s + opts.latency_jitter_s * self.rng.random()
        if fault == "hang":
            await asyncio.sleep(opts.hang_s)
        elif delay:
            await asyncio.sleep(delay)
        if fault.isdigit():
            record.status = int(fault)
            return self._error(
                int(fault),
                "The server had an error while processing your request.",
                "server_error",
                None,
                headers,
            )
        if fault == "drop":
            record.status = -1
            request.transport.close()
            raise asyncio.CancelledError
        payload = {
            "id": f"chatcmpl-{len(self.records)}",
            "object": "chat.completion",
            "created": int(now),
            "model": opts.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": tokens,
            },
        }
        raw = json.dumps(payload).encode()
        if fault == "malformed":
            record.status = 200
            return web.Response(
                body=b"<html><body>502 upstream gateway</body></html",
                content_type="application/json",
                headers=headers,
            )
        if fault == "truncated":
            record.status = 200
            resp = web.StreamResponse(headers=headers)
            resp.content_type = "application/json"
            resp.content_length = len(raw)
            await resp.prepare(request)
            await resp.write(raw[: len(raw) // 2])
            request.transport.close()
            raise asyncio.CancelledError
        record.status = 200
        record.tokens = tokens
        record.key = request_digest(body)
        return web.Response(body=raw, content_type="application/json", headers=headers)

    def _fault(self) -> str:
        index = self.admitted
        self.admitted += 1
        if index < len(self.options.fault_script):
            kind = self.options.fault_script[index]
            return "" if kind == "ok" else kind
        u = self.rng.random()
        for kind, rate in self.options.fault_rates:
            if u < rate:
                return kind
            u -= rate
        return ""

    def _answer(self, messages: Sequence[Mapping[str, str]]) -> str:
        text = messages[-1].get("content", "") if messages else ""
        for template in self.options.query_templates:
            parsed = template.parse(text)
            if parsed is not None:
                return self.model.answer(*parsed)
        return UNKNOWN_ANSWER


class SimulatedServer:
    """The simulated endpoint, served from a background thread (default) or a subprocess.

    ``with SimulatedServer(tasks, options=...) as base_url: ...`` or ``start()``/``stop()``.
    ``base_url`` ends with ``/v1``. A subprocess keeps a busy server off the caller's GIL.
    """

    def __init__(
        self,
        tasks: Sequence[Task] = (),
        *,
        keywords: Mapping[str, Sequence[str]] | None = None,
        options: SimulatedOptions | None = None,
        host: str = DEFAULT_HOST,
        port: int = 0,
        in_subprocess: bool = False,
    ):
        self.tasks = tuple(tasks)
        self.keywords = {k: tuple(v) for k, v in (keywords or {}).items()}
        self.options = options or SimulatedOptions()
        self.host = host
        self.port = port
        self.in_subprocess = in_subprocess
        self.base_url: str | None = None
        self._app: _App | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._process = None
        self._conn = None

    def _make_app(self) -> _App:
        model = SimulatedModel(
            self.tasks,
            keywords=self.keywords,
            seed=self.options.seed,
            p_floor=self.options.p_floor,
            p_ceiling=self.options.p_ceiling,
        )
        return _App(model, self.options)

    def start(self) -> str:
        """Start serving; returns the base URL (``http://127.0.0.1:<port>/v1``)."""
        if self.base_url is not None:
            return self.base_url
        if self.in_subprocess:
            ctx = multiprocessing.get_context("spawn")
            parent, child = ctx.Pipe()
            self._process = ctx.Process(
                target=_serve_subprocess,
                args=(self.tasks, self.keywords, self.options, self.host, self.port, child),
                daemon=True,
            )
            self._process.start()
            self._conn = parent
            if not parent.poll(60):
                raise RuntimeError("simulated server subprocess did not start within 60 s")
            port = parent.recv()
        else:
            ready = threading.Event()
            box: dict[str, Any] = {}
            self._thread = threading.Thread(
                target=self._serve_thread,
                args=(ready, box),
                name="izero-simulated",
                daemon=True,
            )
            self._thread.start()
            ready.wait(30)
            if "error" in box:
                raise box["error"]
            port = box["port"]
        self.port = port
        self.base_url = f"http://{self.host}:{port}/v1"
        logger.info("simulated endpoint serving at %s", self.base_url)
        return self.base_url

    def _serve_thread(self, ready: threading.Event, box: dict) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self._app = self._make_app()
            runner, port = loop.run_until_complete(
                _start_site(self._app.build(), self.host, self.port)
            )
            self._runner = runner
            box["port"] = port
        except Exception as err:
            box["error"] = err
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def stats(self) -> dict[str, Any]:
        """Requests received so far: count, statuses, arrival times (epoch seconds)."""
        if self._app is not None:
            return self._app.stats()
        if self.base_url is None:
            return {"n_requests": 0, "by_status": {}, "times": [], "ok_times": []}
        with urllib.request.urlopen(self.base_url[: -len("/v1")] + "/_stats", timeout=30) as r:
            return json.loads(r.read())

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
            self._thread = None
        if self._process is not None:
            with contextlib.suppress(OSError, BrokenPipeError):
                self._conn.send("stop")
            self._process.join(30)
            if self._process.is_alive():
                self._process.terminate()
            self._process = None
        self.base_url = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


async def _start_site(app: web.Application, host: str, port: int):
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def _serve_subprocess(tasks, keywords, options, host, port, conn) -> None:
    logging.getLogger("aiohttp").setLevel(logging.CRITICAL)
    server = SimulatedServer(tasks, keywords=keywords, options=options, host=host, port=port)
    server.start()
    conn.send(server.port)
    with contextlib.suppress(EOFError):
        conn.recv()
    server.stop()


def request_digest(body: Mapping[str, Any]) -> str:
    """A short digest of a request's model, messages and sampling parameters: two answered
    requests with the same digest are one call paid twice."""
    blob = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def max_in_window(times: Sequence[float], window_s: float) -> int:
    """Most events in any window of ``window_s`` seconds (half-open), e.g. requests."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while ordered[lo] <= t - window_s:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def _preset_templates(presets: Sequence[str]) -> tuple[QueryTemplate, ...]:
    """The dev and test query templates of the named prompts presets."""
    from izero.config.prompts import PromptsConfig

    found: list[QueryTemplate] = []
    for name in presets:
        prompts = PromptsConfig.from_preset(name)
        for text in (prompts.query_template, prompts.test_query_template):
            template = QueryTemplate(text or prompts.query_template, system=prompts.query_system)
            if template not in found:
                found.append(template)
    return tuple(found)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m izero.blackbox.simulated``: serve until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tasks", default="", help="comma-separated task names to know")
    parser.add_argument("--data-dir", default=None)
    defaults = SimulatedOptions()
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--latency", type=float, default=defaults.latency_s)
    parser.add_argument("--rpm", type=float, default=None)
    parser.add_argument("--tpm", type=float, default=None)
    parser.add_argument("--window", type=float, default=defaults.window_s)
    parser.add_argument(
        "--api-key-env", default=None, help="require the key held in this environment variable"
    )
    parser.add_argument(
        "--no-limit-headers",
        action="store_true",
        help="send no x-ratelimit-* headers (clients learn the limit from 429s alone)",
    )
    parser.add_argument(
        "--prompts-preset",
        action="append",
        default=None,
        help="understand the queries of this prompts preset (izero, instructzero-original); "
        "repeat for several; default izero",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    tasks = []
    if args.tasks:
        from izero.tasks import load_task

        tasks = [load_task(name, data_dir=args.data_dir) for name in args.tasks.split(",")]
    api_key = None
    if args.api_key_env:
        import os

        api_key = os.environ.get(args.api_key_env)
    options = SimulatedOptions(
        seed=args.seed,
        model=args.model,
        latency_s=args.latency,
        rpm=args.rpm,
        tpm=args.tpm,
        window_s=args.window,
        api_key=api_key,
        limit_headers=not args.no_limit_headers,
        query_templates=_preset_templates(args.prompts_preset or ["izero"]),
    )
    server = SimulatedServer(tasks, options=options, host=args.host, port=args.port)
    url = server.start()
    print(f"simulated OpenAI-compatible endpoint at {url} (model {args.model})", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
