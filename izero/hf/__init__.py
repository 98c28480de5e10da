"""Shared Hugging Face helpers: model/tokenizer loading and tiny offline test models."""

from izero.hf.loading import load_causal_lm, prepare_tokenizer, resolve_device, resolve_dtype
from izero.hf.tiny import (
    TINY_ARCHS,
    build_tiny_model,
    build_tiny_tokenizer,
    parse_tiny_id,
    save_tiny_model,
)

__all__ = [
    "TINY_ARCHS",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "load_causal_lm",
    "parse_tiny_id",
    "prepare_tokenizer",
    "resolve_device",
    "resolve_dtype",
    "save_tiny_model",
]
