"""The Hugging Face engine: transformers' ``generate(inputs_embeds=...)`` and forward passes.

:meth:`HFEngine.generate_tokens` sorts requests by prompt length and decodes them in batches
of ``batch_size``: each row is ``[left padding][soft prompt A z][prompt token embeddings]`` with
an attention mask that is 0 on the padding, passed to ``model.generate(inputs_embeds=...,
attention_mask=...)`` (which returns only the new tokens). Sampling (``temperature > 0``) uses
the Gumbel-max trick with one random generator per row (:class:`RowGumbelSampler`), so greedy
and sampled requests share batches.

:meth:`HFEngine.features` runs the base model (no language-model head) on left-padded batches
of INSTINCT's feature prompt with the mask and position ids ``mask.cumsum(-1) - 1`` (what
``generate`` derives too; GPT-2's learned positions need it), and returns the last column of the
final hidden state, which is after the model's last norm.

Runs on any device transformers runs on; serves both request kinds.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from izero.errors import GeneratorError
from izero.generator.engines.base import (
    GeneratorEngine,
    left_pad,
    length_sorted_chunks,
    strip_after_eos,
)
from izero.generator.model import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_NEW_TOKENS,
    DEFAULT_MODEL,
    MODEL_EOS,
    FeatureRequest,
    GenerationRequest,
    GeneratorConfig,
    request_sample_seed,
)
from izero.generator.projection import DEFAULT_INTRINSIC_DIM, DEFAULT_N_PROMPT_TOKENS
from izero.generator.prompts import PromptTemplate
from izero.hf.loading import AUTO, load_causal_lm

logger = logging.getLogger(__name__)


class HFEngine(GeneratorEngine):
    """A transformers causal LM turning soft prompts into instructions and features.

    Args:
        config: the options (``engine`` must be ``"hf"``); ``None`` = the defaults.
        model_and_tokenizer: an already loaded ``(model, tokenizer)`` to use instead of loading
            ``config.model`` (``None`` = load it). The tokenizer must pad on the left with a pad
            token.
    """

    name = "hf"
    serves_features = True

    def __init__(
        self,
        config: GeneratorConfig | None = None,
        *,
        model_and_tokenizer: tuple[Any, Any] | None = None,
    ) -> None:
        config = config if config is not None else GeneratorConfig()
        if config.engine != self.name:
            raise GeneratorError(f"HFEngine got a config for engine {config.engine!r}")
        if model_and_tokenizer is None:
            model_and_tokenizer = load_causal_lm(
                config.model,
                dtype=config.dtype,
                device=config.device,
                allow_download=config.allow_download,
            )
        self.model, tokenizer = model_and_tokenizer
        self._embed = self.model.get_input_embeddings()
        weight = self._embed.weight
        self._setup(
            config,
            tokenizer=tokenizer,
            hidden_size=int(weight.shape[1]),
            dtype=weight.dtype,
            device=weight.device,
            embedding_std=float(weight.detach().float().std()),
            max_positions=_max_positions(self.model),
            model_eos=getattr(self.model.generation_config, "eos_token_id", None),
        )

    def embed_tokens(self, ids: Sequence[int]) -> torch.Tensor:
        return self._embed(torch.tensor(list(ids), dtype=torch.long, device=self.device))

    # ------------------------------------------------------------------ generation
    def generate_tokens(self, requests: Sequence[GenerationRequest]) -> list[list[int]]:
        reqs = list(requests)
        for r in reqs:
            if not isinstance(r, GenerationRequest):
                raise GeneratorError(f"expected GenerationRequest objects; got {type(r).__name__}")
        n_soft = self.config.n_prompt_tokens
        lengths = [
            len(self.prompt_token_ids(r.demos)) + (0 if r.z is None else n_soft) for r in reqs
        ]
        out: list[list[int]] = [[] for _ in reqs]
        for chunk in length_sorted_chunks(lengths, self.config.batch_size):
            batch = [reqs[i] for i in chunk]
            for i, row in zip(chunk, self._decode_batch(batch), strict=True):
                out[i] = row
        return out

    @torch.inference_mode()
    def _decode_batch(self, requests: list[GenerationRequest]) -> list[list[int]]:
        """Decode one left-padded batch; returns the new tokens of each row."""
        rows = self.generation_rows(requests)
        self.check_length(max(r.shape[0] for r in rows), self.config.max_new_tokens)
        batch, mask = left_pad(rows, self._pad_row())
        out = self.model.generate(
            inputs_embeds=batch,
            attention_mask=mask,
            generation_config=self._generation_config(),
            logits_processor=_sampling_processors(requests, device=self.device),
        )
        self.tokens_generated += int(out.shape[0] * out.shape[1])
        return [strip_after_eos(row.tolist(), self.eos_ids) for row in out]

    def _generation_config(self) -> Any:
        from transformers import GenerationConfig

        cache = self.config.hf_cache_implementation
        return GenerationConfig(
            max_new_tokens=self.config.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=list(self.eos_ids),
            pad_token_id=self.pad_id,
            cache_implementation=None if cache == "dynamic" else cache,
        )

    def _pad_row(self) -> torch.Tensor:
        return self.embed_tokens([self.pad_id])[0]

    # ------------------------------------------------------------------ features
    def features(self, requests: Sequence[FeatureRequest]) -> torch.Tensor:
        reqs = list(requests)
        for r in reqs:
            if not isinstance(r, FeatureRequest):
                raise GeneratorError(f"expected FeatureRequest objects; got {type(r).__name__}")
        n_soft = self.config.n_prompt_tokens
        lengths = [len(self.feature_token_ids(r.demos)) + n_soft for r in reqs]
        out = torch.empty(len(reqs), self.hidden_size, dtype=torch.float32)
        for chunk in length_sorted_chunks(lengths, self.config.batch_size):
            out[chunk] = self._features_batch([reqs[i] for i in chunk])
        return out

    @torch.inference_mode()
    def _features_batch(self, requests: list[FeatureRequest]) -> torch.Tensor:
        """``batch x hidden`` float32 CPU: final hidden state of each row's last token."""
        rows = self.feature_rows(requests)
        self.check_length(max(r.shape[0] for r in rows), 0)
        batch, mask = left_pad(rows, self._pad_row())
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        hidden = self.model.base_model(
            inputs_embeds=batch, attention_mask=mask, position_ids=positions, use_cache=False
        ).last_hidden_state
        return hidden[:, -1].to(device="cpu", dtype=torch.float32)


class InstructionGenerator(HFEngine):
    """The Hugging Face engine built from keyword arguments (see :class:`GeneratorConfig` for
    their meaning; ``cache_implementation`` is its ``hf_cache_implementation``);
    ``model_and_tokenizer`` as in :class:`HFEngine`."""

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
        cache_implementation: str = "dynamic",
        model_and_tokenizer: tuple[Any, Any] | None = None,
    ) -> None:
        config = GeneratorConfig(
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
            hf_cache_implementation=cache_implementation,
        )
        super().__init__(config, model_and_tokenizer=model_and_tokenizer)


def _max_positions(model: Any) -> int | None:
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    return None


def _sampling_processors(requests: list[GenerationRequest], *, device: torch.device) -> Any:
    from transformers import LogitsProcessorList

    if not any(r.temperature > 0 for r in requests):
        return LogitsProcessorList()
    return LogitsProcessorList([RowGumbelSampler(requests, device=device)])


class RowGumbelSampler:
    """Logits processor: rows with ``temperature > 0`` get ``logits / T + Gumbel noise``.

    With greedy decoding on top (argmax), each such row samples exactly from
    ``softmax(logits / T)`` (Gumbel-max trick); the noise of row ``b`` comes from its own
    generator, seeded by :func:`~izero.generator.model.request_sample_seed`, so it does not
    depend on the batch. Greedy rows pass through unchanged.
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
