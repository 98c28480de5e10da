"""Batched soft-prompt -> instruction generation with a Hugging Face causal LM.

One :class:`InstructionGenerator` holds one model. :meth:`InstructionGenerator.generate` takes
requests of any number of tasks, sorts them by prompt length, and decodes them in batches of
``batch_size``: each row is ``[left padding][soft prompt A z][prompt token embeddings]`` with an
attention mask that is 0 on the padding, passed to ``model.generate(inputs_embeds=...,
attention_mask=...)`` (which returns only the new tokens).

Determinism: greedy decoding is a pure function of (model, prompt, ``z``, projection seed); a
request gives the same instruction alone or in any batch (verified on CPU in fp32 by the tests;
in bf16 on GPU, batched matmuls may round differently for different batch shapes, which can flip
near-tied greedy choices). Sampling (``temperature > 0``) uses the Gumbel-max trick with one
random generator per row, seeded from the request's ``sample_seed`` and content, so a sampled
request is also reproducible independently of what else shares its batch, and greedy and sampled
requests share batches.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from izero.errors import ConfigError, GeneratorError
from izero.generator.projection import (
    DEFAULT_INTRINSIC_DIM,
    DEFAULT_N_PROMPT_TOKENS,
    PROJECTION_INITS,
    ProjectionConfig,
    RandomProjection,
)
from izero.generator.prompts import PromptTemplate, build_prompt_text
from izero.hf.loading import AUTO, load_causal_lm

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "tiny:llama"
"""The default generator model: a tiny random Llama (offline). Real runs name a checkpoint."""

DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_BATCH_SIZE = 64
MODEL_EOS = "model"
"""``eos_token_id`` value meaning: the model's generation config eos (else the tokenizer's)."""

_PROMPT_CACHE_SIZE = 4096


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
        demos = tuple((str(i), str(o)) for i, o in self.demos)
        object.__setattr__(self, "demos", demos)
        if not demos:
            raise GeneratorError(
                "GenerationRequest.demos is empty; expected at least one (input, output) pair"
            )
        if self.z is not None:
            z = tuple(float(v) for v in self.z)
            if not all(math.isfinite(v) for v in z):
                raise GeneratorError(f"GenerationRequest.z has NaN/inf: {z}; expected finite")
            object.__setattr__(self, "z", z)
        t = float(self.temperature)
        if not (math.isfinite(t) and t >= 0):
            raise GeneratorError(f"temperature must be finite and >= 0; got {self.temperature!r}")
        object.__setattr__(self, "temperature", t)


@dataclass(frozen=True)
class GeneratorConfig:
    """Options of :class:`InstructionGenerator` (see its docstring), validated on construction."""

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


class InstructionGenerator:
    """Turns soft prompts and demonstrations into instructions, in batches.

    Args:
        model: ``tiny:<arch>``, a Hugging Face id or a local path (see
            :func:`izero.hf.load_causal_lm`).
        dtype, device: ``"auto"`` = bf16 on CUDA / fp32 on CPU, CUDA when available.
        max_new_tokens: decode length cap (tokens).
        n_prompt_tokens: soft tokens per prompt; intrinsic_dim: length of ``z``.
        projection_init, projection_scale, match_embedding_std: see
            :mod:`izero.generator.projection`.
        batch_size: rows per ``model.generate`` call.
        eos_token_id: ``"model"`` (the checkpoint's eos), an id or tuple of ids, or ``None`` to
            always decode ``max_new_tokens`` (throughput benchmarks on random models).
        allow_download: allow fetching the checkpoint from the Hub (off by default).
        template: the prompt template (:class:`PromptTemplate`).
        model_and_tokenizer: an already loaded ``(model, tokenizer)`` to use instead of loading
            ``model`` (``None`` = load it). The tokenizer must pad on the left with a pad token.
    """

    def __init__(
        self,
        *,
        model: str = DEFAULT_MODEL,
        dtype: str = AUTO,
        device: str = AUTO,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        n_prompt_tokens: int = DEFAULT_N_PROMPT_TOKENS,
        intrinsic_dim: int = DEFAULT_INTRINSIC_DIM,
        projection_init: str = "uniform",
        projection_scale: float = 1.0,
        match_embedding_std: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        eos_token_id: int | tuple[int, ...] | str | None = MODEL_EOS,
        allow_download: bool = False,
        template: PromptTemplate | None = None,
        model_and_tokenizer: tuple[Any, Any] | None = None,
    ) -> None:
        self.config = GeneratorConfig(
            model=model,
            dtype=dtype,
            device=device,
            max_new_tokens=max_new_tokens,
            n_prompt_tokens=n_prompt_tokens,
            intrinsic_dim=intrinsic_dim,
            projection_init=projection_init,
            projection_scale=projection_scale,
            match_embedding_std=match_embedding_std,
            batch_size=batch_size,
            eos_token_id=eos_token_id,
            allow_download=allow_download,
            template=template if template is not None else PromptTemplate(),
        )
        if model_and_tokenizer is None:
            model_and_tokenizer = load_causal_lm(
                model, dtype=dtype, device=device, allow_download=allow_download
            )
        self.model, self.tokenizer = model_and_tokenizer
        self._pad_id = self.tokenizer.pad_token_id
        if self._pad_id is None:
            self._pad_id = self.tokenizer.eos_token_id
        if self._pad_id is None:
            raise GeneratorError(
                "the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token "
                "(izero.hf.prepare_tokenizer does) before building the generator"
            )
        self._embed = self.model.get_input_embeddings()
        weight = self._embed.weight
        self.device = weight.device
        self.dtype = weight.dtype
        self.hidden_size = int(weight.shape[1])
        self.embedding_std = float(weight.detach().float().std())
        self._projections: dict[int, RandomProjection] = {}
        self._prompt_ids: dict[tuple[tuple[str, str], ...], list[int]] = {}
        self._eos = self._resolve_eos(self.config.eos_token_id)
        self.tokens_generated = 0
        """Total new tokens decoded (every row counts its full decode length)."""

    # ------------------------------------------------------------------ public API
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """One instruction per request, in the order of ``requests``: the decode cleaned by
        :func:`~izero.generator.prompts.clean_instruction`, or as decoded when the template
        says so (``PromptTemplate.clean=False``)."""
        finish = self.config.template.finish
        return [finish(text) for text in self.generate_texts(requests)]

    def generate_texts(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """The raw decoded completions (special tokens skipped), in request order."""
        token_lists = self.generate_tokens(requests)
        if not token_lists:
            return []
        return self.tokenizer.batch_decode(token_lists, skip_special_tokens=True)

    def generate_tokens(self, requests: Sequence[GenerationRequest]) -> list[list[int]]:
        """The new token ids of each request (padding after eos removed), in request order."""
        reqs = list(requests)
        for r in reqs:
            if not isinstance(r, GenerationRequest):
                raise GeneratorError(f"expected GenerationRequest objects; got {type(r).__name__}")
        prompt_ids = [self._prompt_token_ids(r.demos) for r in reqs]
        soft = [self._soft_prompt(r) for r in reqs]
        lengths = [
            len(ids) + (0 if s is None else s.shape[0])
            for ids, s in zip(prompt_ids, soft, strict=True)
        ]
        order = sorted(range(len(reqs)), key=lambda i: (-lengths[i], i))
        out: list[list[int]] = [[] for _ in reqs]
        bs = self.config.batch_size
        for start in range(0, len(order), bs):
            chunk = order[start : start + bs]
            rows = self._decode_batch(
                [prompt_ids[i] for i in chunk],
                [soft[i] for i in chunk],
                [reqs[i] for i in chunk],
            )
            for i, row in zip(chunk, rows, strict=True):
                out[i] = row
        return out

    def projection(self, seed: int) -> RandomProjection:
        """The (cached) random projection with ``seed`` for this model's hidden size."""
        proj = self._projections.get(seed)
        if proj is None:
            needs_std = self.config.projection_init == "normal" or self.config.match_embedding_std
            proj = RandomProjection(
                ProjectionConfig(
                    seed=seed,
                    intrinsic_dim=self.config.intrinsic_dim,
                    n_prompt_tokens=self.config.n_prompt_tokens,
                    hidden_size=self.hidden_size,
                    init=self.config.projection_init,
                    scale=self.config.projection_scale,
                    embedding_std=self.embedding_std if needs_std else None,
                    match_embedding_std=self.config.match_embedding_std,
                )
            )
            self._projections[seed] = proj
        return proj

    # ------------------------------------------------------------------ internals
    def _resolve_eos(self, eos: int | tuple[int, ...] | str | None) -> list[int]:
        if eos is None:
            return []
        if eos == MODEL_EOS:
            found = getattr(self.model.generation_config, "eos_token_id", None)
            if found is None:
                found = self.tokenizer.eos_token_id
            if found is None:
                return []
            return [int(found)] if isinstance(found, int) else [int(x) for x in found]
        return [int(eos)] if isinstance(eos, int) else [int(x) for x in eos]

    def _prompt_token_ids(self, demos: tuple[tuple[str, str], ...]) -> list[int]:
        ids = self._prompt_ids.get(demos)
        if ids is None:
            text, is_chat = build_prompt_text(
                demos, template=self.config.template, tokenizer=self.tokenizer
            )
            ids = list(self.tokenizer(text, add_special_tokens=not is_chat)["input_ids"])
            if len(self._prompt_ids) >= _PROMPT_CACHE_SIZE:
                self._prompt_ids.clear()
            self._prompt_ids[demos] = ids
        return ids

    def _soft_prompt(self, request: GenerationRequest) -> torch.Tensor | None:
        if request.z is None:
            return None
        proj = self.projection(request.projection_seed)
        return proj.project([request.z], dtype=self.dtype, device=self.device)[0]

    @torch.inference_mode()
    def _decode_batch(
        self,
        prompt_ids: list[list[int]],
        soft: list[torch.Tensor | None],
        requests: list[GenerationRequest],
    ) -> list[list[int]]:
        """Decode one left-padded batch; returns the new tokens of each row."""
        rows = []
        for ids, s in zip(prompt_ids, soft, strict=True):
            emb = self._embed(torch.tensor(ids, dtype=torch.long, device=self.device))
            rows.append(emb if s is None else torch.cat([s, emb], dim=0))
        width = max(r.shape[0] for r in rows)
        limit = _max_positions(self.model)
        if limit is not None and width + self.config.max_new_tokens > limit:
            raise GeneratorError(
                f"prompt of {width} tokens + max_new_tokens={self.config.max_new_tokens} exceeds "
                f"the model's {limit} positions; use fewer or shorter demonstrations"
            )
        pad = self._embed(torch.tensor([self._pad_id], device=self.device))[0]
        batch = pad.expand(len(rows), width, self.hidden_size).clone()
        mask = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for b, r in enumerate(rows):
            batch[b, width - r.shape[0] :] = r
            mask[b, width - r.shape[0] :] = 1
        processors = _sampling_processors(requests, device=self.device)
        gen_config = self._generation_config()
        out = self.model.generate(
            inputs_embeds=batch,
            attention_mask=mask,
            generation_config=gen_config,
            logits_processor=processors,
        )
        self.tokens_generated += int(out.shape[0] * out.shape[1])
        return [_strip_after_eos(row.tolist(), self._eos) for row in out]

    def _generation_config(self) -> Any:
        from transformers import GenerationConfig

        return GenerationConfig(
            max_new_tokens=self.config.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=list(self._eos),
            pad_token_id=self._pad_id,
        )


def _max_positions(model: Any) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    return None


def _strip_after_eos(tokens: list[int], eos: list[int]) -> list[int]:
    """Tokens up to (and including) the first eos; the rest is padding."""
    for pos, tok in enumerate(tokens):
        if tok in eos:
            return tokens[: pos + 1]
    return tokens


def request_sample_seed(request: GenerationRequest) -> int:
    """A 63-bit seed of a request's sampling noise: its ``sample_seed`` and its content."""
    key = repr((request.sample_seed, request.demos, request.z, request.projection_seed))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") >> 1


def _sampling_processors(requests: list[GenerationRequest], *, device: torch.device) -> Any:
    from transformers import LogitsProcessorList

    if not any(r.temperature > 0 for r in requests):
        return LogitsProcessorList()
    return LogitsProcessorList([RowGumbelSampler(requests, device=device)])


class RowGumbelSampler:
    """Logits processor: rows with ``temperature > 0`` get ``logits / T + Gumbel noise``.

    With greedy decoding on top (argmax), each such row samples exactly from
    ``softmax(logits / T)`` (Gumbel-max trick); the noise of row ``b`` comes from its own
    generator, seeded by :func:`request_sample_seed`, so it does not depend on the batch.
    Greedy rows pass through unchanged.
    """

    def __init__(self, requests: Sequence[GenerationRequest], *, device: torch.device) -> None:
        self.temperatures = [r.temperature for r in requests]
        self.generators: list[torch.Generator | None] = []
        for r in requests:
            if r.temperature > 0:
                gen = torch.Generator(device=device)
                gen.manual_seed(request_sample_seed(r))
                self.generators.append(gen)
            else:
                self.generators.append(None)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """``scores``: ``batch x vocab`` logits of the next token; returns processed scores."""
        scores = scores.float().clone()
        tiny = torch.finfo(torch.float32).tiny
        for b, (t, gen) in enumerate(zip(self.temperatures, self.generators, strict=True)):
            if gen is None:
                continue
            u = torch.rand(scores.shape[1], generator=gen, device=scores.device)
            gumbel = -torch.log(-torch.log(u.clamp(min=tiny, max=1 - 1e-7)))
            scores[b] = scores[b] / t + gumbel
        return scores
