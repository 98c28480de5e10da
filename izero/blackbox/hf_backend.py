"""A local Hugging Face causal LM as the black box, served by a Ray actor in batches.

The actor (:func:`create_hf_blackbox`) owns the model; concurrent ``complete`` calls are
gathered for up to ``batch_wait_s`` seconds into batches of at most ``max_batch_size`` and
decoded greedily together (left padding). :class:`HFChatBackend` puts the actor behind the
same ``complete(messages) -> CallOutcome`` interface as the HTTP client (with the response
cache), and :class:`HFScorer` scores instructions with it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from izero.blackbox.cache import CachedAnswer, ResponseCache, request_key
from izero.blackbox.client import CallOutcome, CallRecord
from izero.blackbox.prompts import QueryTemplate
from izero.blackbox.scoring import Scorer, ScoreResult, score_instruction
from izero.errors import BlackBoxError, ConfigError
from izero.tasks.types import Example

logger = logging.getLogger(__name__)

DEFAULT_MAX_NEW_TOKENS = 16
DEFAULT_MAX_BATCH_SIZE = 16
DEFAULT_BATCH_WAIT_S = 0.01
HF_URL_SCHEME = "hf://"
_DTYPES = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class HFBlackBoxOptions:
    """A local model as the black box.

    ``model_path``: a local folder, a Hugging Face id already in the local cache (nothing is
    downloaded) or ``tiny:<arch>`` (random weights, for tests); ``dtype`` auto (bf16 on CUDA,
    fp32 on CPU) or float32/bfloat16/float16; ``device`` a torch device string or ``auto``;
    answers are greedy (temperature 0), at most ``max_new_tokens`` tokens.
    ``use_chat_template``: format messages with the tokenizer's chat template when it has one
    (otherwise the user message is the prompt).
    """

    model_path: str
    dtype: str = "float32"
    device: str = "cpu"
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE
    batch_wait_s: float = DEFAULT_BATCH_WAIT_S
    use_chat_template: bool = True

    def __post_init__(self) -> None:
        if not self.model_path:
            raise ConfigError("model_path", self.model_path, "a local model folder or id")
        if self.dtype not in _DTYPES:
            raise ConfigError("dtype", self.dtype, f"one of {_DTYPES}")
        if self.max_new_tokens < 1 or self.max_batch_size < 1 or self.batch_wait_s < 0:
            raise ConfigError(
                "max_new_tokens/max_batch_size/batch_wait_s",
                (self.max_new_tokens, self.max_batch_size, self.batch_wait_s),
                "positive sizes and a wait >= 0",
            )

    @property
    def base_url(self) -> str:
        """How caches and errors name this black box."""
        return HF_URL_SCHEME + self.model_path


class _HFModelActor:
    """Ray actor body: loads the model once and answers batches of chat messages."""

    def __init__(self, options: HFBlackBoxOptions):
        from izero.hf.loading import load_causal_lm

        self.options = options
        self.load_error: str | None = None
        try:
            self.model, self.tokenizer = load_causal_lm(
                options.model_path, dtype=options.dtype, device=options.device
            )
            self.device = self.model.device
        except Exception as err:  # kept, so every call says why instead of "actor died"
            self.load_error = f"{type(err).__name__}: {err}"
        self._queue: asyncio.Queue | None = None
        self._batcher: asyncio.Task | None = None
        self.batches: list[int] = []

    def _prompt(self, messages: Sequence[Mapping[str, str]]) -> str:
        if self.options.use_chat_template and getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(
                list(messages), tokenize=False, add_generation_prompt=True
            )
        return "\n\n".join(m["content"] for m in messages)

    def generate(self, prompts: Sequence[str]) -> list[tuple[str, int, int]]:
        """Greedy answers for ``len(prompts)`` prompts in one batch: (text, prompt tokens,
        completion tokens) each."""
        import torch

        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.no_grad():
            out = self.model.generate(
                **enc,
                max_new_tokens=self.options.max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]  # batch x new_tokens
        answers = []
        eos = self.tokenizer.eos_token_id
        for row, mask in zip(new, enc["attention_mask"], strict=True):
            ids = row.tolist()
            if eos is not None and eos in ids:
                ids = ids[: ids.index(eos)]
            ids = [i for i in ids if i != self.tokenizer.pad_token_id]
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            answers.append((text, int(mask.sum()), len(ids)))
        self.batches.append(len(prompts))
        return answers

    async def complete(self, messages: list[dict[str, str]]) -> tuple[str, int, int]:
        """One answer; concurrent calls are answered together in batches."""
        if self.load_error is not None:
            raise BlackBoxError(
                f"could not load the local black-box model {self.options.model_path!r}: "
                f"{self.load_error}. Fix: give a local folder with a causal LM and its tokenizer "
                "(or an id already in the Hugging Face cache), and a device and dtype this "
                "machine has"
            )
        if self._queue is None:
            self._queue = asyncio.Queue()
            self._batcher = asyncio.get_running_loop().create_task(self._run_batches())
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((self._prompt(messages), future))
        return await future

    async def _run_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            deadline = loop.time() + self.options.batch_wait_s
            while len(items) < self.options.max_batch_size:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    items.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            try:
                answers = await loop.run_in_executor(
                    None, self.generate, [prompt for prompt, _ in items]
                )
            except Exception as err:
                for _, future in items:
                    if not future.done():
                        future.set_exception(err)
                continue
            for (_, future), answer in zip(items, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

    def batch_sizes(self) -> list[int]:
        """Sizes of the batches decoded so far."""
        return list(self.batches)


def create_hf_blackbox(options: HFBlackBoxOptions, *, num_cpus: float = 1.0, num_gpus: float = 0.0):
    """Start the model actor (needs Ray). ``num_gpus`` > 0 (a fraction shares a GPU) with
    ``device="cuda"`` or ``"auto"`` puts the model on the GPU Ray assigns."""
    import ray

    actor_cls = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_concurrency=1000)(
        _HFModelActor
    )
    return actor_cls.remote(options)


class HFChatBackend:
    """The HF actor behind the chat-backend interface, with the response cache."""

    def __init__(self, options: HFBlackBoxOptions, actor, *, cache: ResponseCache | None = None):
        self.options = options
        self.actor = actor
        self.cache = cache
        self._params: dict[str, Any] = {
            "temperature": 0.0,
            "max_tokens": options.max_new_tokens,
        }

    async def complete(self, messages: Sequence[Mapping[str, str]]) -> CallOutcome:
        started = time.time()
        key = request_key(
            base_url=self.options.base_url,
            model=self.options.model_path,
            params=self._params,
            messages=messages,
        )
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                record = CallRecord(
                    started,
                    time.time(),
                    "cached",
                    0,
                    hit.prompt_tokens,
                    hit.completion_tokens,
                    cached=True,
                    ok=True,
                )
                return CallOutcome(hit.text, record)
        try:
            text, prompt_tokens, completion_tokens = await self.actor.complete.remote(
                [dict(m) for m in messages]
            )
        except Exception as err:
            cause = getattr(err, "cause", None)  # what the actor raised, under Ray's wrapper
            if isinstance(cause, BlackBoxError):
                raise cause from None
            raise BlackBoxError(
                f"the local model {self.options.model_path} failed to answer "
                f"({type(cause or err).__name__}: {cause or err}). Fix: check that the device "
                "has memory for the model and the batch, or lower blackbox.max_tokens"
            ) from None
        if self.cache is not None:
            self.cache.put(
                key,
                CachedAnswer(text, prompt_tokens, completion_tokens),
                model=self.options.model_path,
            )
        record = CallRecord(
            started,
            time.time(),
            "200",
            1,
            prompt_tokens,
            completion_tokens,
            cached=False,
            ok=True,
            attempt_times=(started,),
            attempt_statuses=("200",),
        )
        return CallOutcome(text, record)


class HFScorer:
    """Scores instructions with a local model actor (created, and stopped by :meth:`close`,
    if ``actor`` is ``None``)."""

    def __init__(
        self,
        options: HFBlackBoxOptions,
        *,
        actor=None,
        cache_dir: str | Path | None = None,
        scorer: Scorer | None = None,
        num_gpus: float = 0.0,
    ):
        self.options = options
        self._owns_actor = actor is None
        self.actor = actor if actor is not None else create_hf_blackbox(options, num_gpus=num_gpus)
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.backend = HFChatBackend(options, self.actor, cache=self.cache)
        self.scorer = scorer

    async def score(
        self,
        instruction: str,
        examples: Sequence[Example],
        metric: str,
        *,
        tag: Mapping[str, Any] | None = None,
        template: QueryTemplate | None = None,
    ) -> ScoreResult:
        return await score_instruction(
            self.backend,
            instruction,
            examples,
            metric,
            scorer=self.scorer,
            tag=tag,
            template=template,
        )

    def close(self) -> None:
        """Close the cache; stop the model actor if this scorer started it."""
        if self.cache is not None:
            self.cache.close()
        if self._owns_actor:
            import ray

            ray.kill(self.actor)
