"""What every generator engine shares: prompts, soft prompts, token embeddings, clean-up.

An engine owns one model and answers two kinds of requests:

- :meth:`GeneratorEngine.generate_tokens` (and :meth:`~GeneratorEngine.generate`, the cleaned
  instructions): each row is ``[soft prompt A z (n_prompt_tokens x hidden)][prompt token
  embeddings]``, decoded greedily or with seeded sampling;
- :meth:`GeneratorEngine.features`: the final hidden state of the last token of INSTINCT's
  prompt (:mod:`izero.generator.features`), ``n x hidden`` float32.

The prompt text, its token ids, the projection ``A`` and the soft-prompt rows are computed here,
by the same code for every engine, so two engines given the same weights see the same inputs;
subclasses only embed token ids (with the model's input-embedding table) and run the model.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch

from izero.errors import GeneratorError
from izero.generator.features import feature_prompt_text
from izero.generator.model import MODEL_EOS, FeatureRequest, GenerationRequest, GeneratorConfig
from izero.generator.projection import ProjectionConfig, RandomProjection
from izero.generator.prompts import build_prompt_text

logger = logging.getLogger(__name__)

PROMPT_CACHE_SIZE = 4096
"""Token-id lists kept per engine (one per distinct demonstrations), each for generation and
features; the cache is emptied when full."""


class GeneratorEngine(ABC):
    """One model turning soft prompts and demonstrations into instructions or features.

    Subclasses set :attr:`model`-specific state, then call :meth:`_setup` with the tokenizer and
    the facts of the model, and implement :meth:`embed_tokens`, :meth:`generate_tokens` and
    :meth:`features`.

    Attributes:
        name: the engine's name in configs (``generator.engine``).
        serves_features: whether :meth:`features` works on this engine.
        config: the validated options.
        tokenizer: the model's tokenizer (left padding, a pad token).
        hidden_size, dtype, device: of the model's input embeddings.
        tokens_generated: new tokens decoded so far (every row counts its decoded length).
    """

    name: ClassVar[str]
    serves_features: ClassVar[bool] = False

    workdir: Path | None = None
    """A folder of files the engine created (removed by :meth:`close`), if any."""

    config: GeneratorConfig
    tokenizer: Any
    hidden_size: int
    dtype: torch.dtype
    device: torch.device

    def _setup(
        self,
        config: GeneratorConfig,
        *,
        tokenizer: Any,
        hidden_size: int,
        dtype: torch.dtype,
        device: torch.device,
        embedding_std: float,
        max_positions: int | None,
        model_eos: int | Sequence[int] | None,
    ) -> None:
        """Shared state; ``model_eos`` is the checkpoint's eos id(s) (generation config first).

        ``embedding_std``: standard deviation of the input-embedding table (for the
        ``normal`` projection and ``match_embedding_std``); ``max_positions``: the most tokens
        a row may hold, prompt plus new tokens (``None``: no limit known).
        """
        self.config = config
        self.tokenizer = tokenizer
        pad = tokenizer.pad_token_id
        if pad is None:
            pad = tokenizer.eos_token_id
        if pad is None:
            raise GeneratorError(
                "the tokenizer has neither a pad nor an eos token; set tokenizer.pad_token "
                "(izero.hf.prepare_tokenizer does) before building the generator"
            )
        self.pad_id = int(pad)
        self.hidden_size = hidden_size
        self.dtype = dtype
        self.device = device
        self.embedding_std = embedding_std
        self.max_positions = max_positions
        self.eos_ids = _resolve_eos(config.eos_token_id, model_eos, tokenizer)
        self.tokens_generated = 0
        self._projections: dict[int, RandomProjection] = {}
        self._prompt_ids: dict[tuple[tuple[str, str], ...], list[int]] = {}
        self._feature_ids: dict[tuple[tuple[str, str], ...], list[int]] = {}

    # ------------------------------------------------------------------ engine specific
    @abstractmethod
    def embed_tokens(self, ids: Sequence[int]) -> torch.Tensor:
        """Input embeddings of token ``ids`` (``len(ids) x hidden``, the engine's dtype)."""

    @abstractmethod
    def generate_tokens(self, requests: Sequence[GenerationRequest]) -> list[list[int]]:
        """The new token ids of each request (up to and including its first eos), in order."""

    @abstractmethod
    def features(self, requests: Sequence[FeatureRequest]) -> torch.Tensor:
        """``n x hidden`` float32 CPU features of ``requests``, in order (see
        :class:`~izero.generator.model.FeatureRequest`)."""

    def close(self) -> None:  # noqa: B027 (engines without resources need not override it)
        """Release the model and anything the engine started (idempotent)."""

    def __enter__(self) -> GeneratorEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ shared API
    def generate(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """One clean instruction per request, in the order of ``requests``."""
        return self.clean(self.generate_tokens(requests))

    def generate_texts(self, requests: Sequence[GenerationRequest]) -> list[str]:
        """The raw decoded completions (special tokens skipped), in request order."""
        return self.decode(self.generate_tokens(requests))

    def decode(self, token_lists: Sequence[Sequence[int]]) -> list[str]:
        """Token id lists -> text, special tokens skipped."""
        if not token_lists:
            return []
        return self.tokenizer.batch_decode(list(token_lists), skip_special_tokens=True)

    def clean(self, token_lists: Sequence[Sequence[int]]) -> list[str]:
        """Token id lists -> instructions: cleaned (see :func:`clean_instruction`), or as decoded
        when the template says so (``PromptTemplate.clean=False``)."""
        finish = self.config.template.finish
        return [finish(text) for text in self.decode(token_lists)]

    def projection(self, seed: int) -> RandomProjection:
        """The (cached) random projection with ``seed`` for this model's hidden size."""
        proj = self._projections.get(seed)
        if proj is None:
            cfg = self.config
            needs_std = cfg.projection_init == "normal" or cfg.match_embedding_std
            proj = RandomProjection(
                ProjectionConfig(
                    seed=seed,
                    intrinsic_dim=cfg.intrinsic_dim,
                    n_prompt_tokens=cfg.n_prompt_tokens,
                    hidden_size=self.hidden_size,
                    init=cfg.projection_init,
                    scale=cfg.projection_scale,
                    embedding_std=self.embedding_std if needs_std else None,
                    match_embedding_std=cfg.match_embedding_std,
                )
            )
            self._projections[seed] = proj
        return proj

    def prompt_token_ids(self, demos: tuple[tuple[str, str], ...]) -> list[int]:
        """Token ids of the generation prompt of ``demos`` (the configured template)."""
        ids = self._prompt_ids.get(demos)
        if ids is None:
            text, is_chat = build_prompt_text(
                demos, template=self.config.template, tokenizer=self.tokenizer
            )
            ids = list(self.tokenizer(text, add_special_tokens=not is_chat)["input_ids"])
            _cache_put(self._prompt_ids, demos, ids)
        return ids

    def feature_token_ids(self, demos: tuple[tuple[str, str], ...]) -> list[int]:
        """Token ids of INSTINCT's feature prompt of ``demos`` (tokenizer's special tokens)."""
        ids = self._feature_ids.get(demos)
        if ids is None:
            ids = list(self.tokenizer(feature_prompt_text(demos))["input_ids"])
            _cache_put(self._feature_ids, demos, ids)
        return ids

    def soft_prompt(self, z: tuple[float, ...], projection_seed: int) -> torch.Tensor:
        """``A z`` as ``n_prompt_tokens x hidden`` rows (the engine's dtype and device)."""
        proj = self.projection(projection_seed)
        return proj.project([z], dtype=self.dtype, device=self.device)[0]

    def generation_rows(self, requests: Sequence[GenerationRequest]) -> list[torch.Tensor]:
        """Each request's input embeddings ``[A z; prompt tokens]`` (``seq x hidden``)."""
        rows = []
        for r in requests:
            if not isinstance(r, GenerationRequest):
                raise GeneratorError(f"expected GenerationRequest objects; got {type(r).__name__}")
            emb = self.embed_tokens(self.prompt_token_ids(r.demos))
            if r.z is not None:
                emb = torch.cat([self.soft_prompt(r.z, r.projection_seed), emb])
            rows.append(emb)
        return rows

    def feature_rows(self, requests: Sequence[FeatureRequest]) -> list[torch.Tensor]:
        """Each request's input embeddings ``[A z; feature prompt tokens]``."""
        rows = []
        for r in requests:
            if not isinstance(r, FeatureRequest):
                raise GeneratorError(f"expected FeatureRequest objects; got {type(r).__name__}")
            emb = self.embed_tokens(self.feature_token_ids(r.demos))
            rows.append(torch.cat([self.soft_prompt(r.z, r.projection_seed), emb]))
        return rows

    def check_length(self, width: int, new_tokens: int) -> None:
        """Refuse a prompt of ``width`` tokens that leaves no room for ``new_tokens``."""
        limit = self.max_positions
        if limit is not None and width + new_tokens > limit:
            raise GeneratorError(
                f"prompt of {width} tokens + {new_tokens} new tokens exceeds the model's "
                f"{limit} positions; use fewer or shorter demonstrations"
                + (" or a larger generator.vllm_max_model_len" if self.name == "vllm" else "")
            )


def length_sorted_chunks(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Indices into ``lengths`` grouped in chunks of ``batch_size``, longest rows first
    (similar lengths share a batch, so left padding stays small)."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[s : s + batch_size] for s in range(0, len(order), batch_size)]


def left_pad(
    rows: Sequence[torch.Tensor], pad_row: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ``seq_i x hidden`` rows into ``batch x width x hidden`` with padding on the left,
    and the ``batch x width`` attention mask (long, 0 on padding)."""
    width = max(r.shape[0] for r in rows)
    hidden = pad_row.shape[-1]
    batch = pad_row.expand(len(rows), width, hidden).clone()
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=pad_row.device)
    for b, r in enumerate(rows):
        batch[b, width - r.shape[0] :] = r
        mask[b, width - r.shape[0] :] = 1
    return batch, mask


def strip_after_eos(tokens: list[int], eos: Sequence[int]) -> list[int]:
    """Tokens up to (and including) the first eos; the rest is padding."""
    for pos, tok in enumerate(tokens):
        if tok in eos:
            return tokens[: pos + 1]
    return tokens


def _resolve_eos(
    eos: int | tuple[int, ...] | str | None, model_eos: int | Sequence[int] | None, tokenizer: Any
) -> list[int]:
    if eos is None:
        return []
    if eos == MODEL_EOS:
        found = model_eos if model_eos is not None else tokenizer.eos_token_id
        if found is None:
            return []
        return [int(found)] if isinstance(found, int) else [int(x) for x in found]
    return [int(eos)] if isinstance(eos, int) else [int(x) for x in eos]  # type: ignore[union-attr]


def _cache_put(cache: dict[Any, list[int]], key: Any, ids: list[int]) -> None:
    if len(cache) >= PROMPT_CACHE_SIZE:
        cache.clear()
    cache[key] = ids
