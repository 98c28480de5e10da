"""Generator engines: one model behind one interface, chosen by ``generator.engine``.

- ``hf`` (:class:`HFEngine`): transformers' ``generate(inputs_embeds=...)``; any device;
  serves generation and features.
- ``vllm`` (:class:`~izero.generator.engines.vllm.VLLMEngine`): offline ``vllm.LLM`` from
  prompt embeddings (needs the ``izero[vllm]`` extra); serves generation only.

Both build their inputs with the same code (:class:`GeneratorEngine`), so in float32 they
decode the same instructions. The vLLM module is imported only when that engine is built.
"""

from __future__ import annotations

from typing import Any

from izero.errors import GeneratorError
from izero.generator.engines.base import GeneratorEngine
from izero.generator.engines.hf import HFEngine, InstructionGenerator
from izero.generator.model import ENGINES, GeneratorConfig

ENGINES_SERVING_FEATURES: tuple[str, ...] = ("hf",)
"""Engines whose :meth:`GeneratorEngine.features` works (config checks can refuse the rest)."""


def engine_class(name: str) -> type[GeneratorEngine]:
    """The engine class named ``name`` (one of :data:`~izero.generator.model.ENGINES`)."""
    if name == "hf":
        return HFEngine
    if name == "vllm":
        from izero.generator.engines.vllm import VLLMEngine

        return VLLMEngine
    raise GeneratorError(f"unknown generator engine {name!r}; expected one of {', '.join(ENGINES)}")


def build_engine(config: GeneratorConfig, **collaborators: Any) -> GeneratorEngine:
    """The engine of ``config.engine`` built from ``config`` (``collaborators``: keyword
    arguments of that engine's constructor, e.g. ``model_and_tokenizer`` for ``hf``)."""
    return engine_class(config.engine)(config, **collaborators)


__all__ = [
    "ENGINES",
    "ENGINES_SERVING_FEATURES",
    "GeneratorEngine",
    "HFEngine",
    "InstructionGenerator",
    "build_engine",
    "engine_class",
]
