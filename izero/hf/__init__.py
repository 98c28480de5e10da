"""Shared Hugging Face helpers: model/tokenizer loading and tiny offline test models.

The names of :mod:`izero.hf.tiny` are resolved on first use, so that ``python -m izero.hf.tiny``
(the command that saves a tiny model folder) runs the module once, as ``__main__``.
"""

from __future__ import annotations

from typing import Any

from izero.hf.loading import load_causal_lm, prepare_tokenizer, resolve_device, resolve_dtype

_TINY_NAMES = (
    "TINY_ARCHS",
    "build_tiny_model",
    "build_tiny_tokenizer",
    "parse_tiny_id",
    "save_tiny_model",
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


def __getattr__(name: str) -> Any:
    if name in _TINY_NAMES:
        from izero.hf import tiny

        return getattr(tiny, name)
    raise AttributeError(f"module 'izero.hf' has no attribute {name!r}")
