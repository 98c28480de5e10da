"""Method names and where each method's class lives (imported on first use)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from izero.methods.base import Method

#: name -> "module:Class"; one module per method.
_METHODS: dict[str, str] = {
    "instructzero": "izero.methods.instructzero:InstructZero",
    "instructzero_paper": "izero.methods.instructzero_paper:InstructZeroPaper",
    "instinct": "izero.methods.instinct:Instinct",
    "random": "izero.methods.random_search:RandomSearch",
    "sampling": "izero.methods.sampling:Sampling",
    "ape": "izero.methods.ape:Ape",
    "manual": "izero.methods.manual:Manual",
}

METHOD_NAMES: tuple[str, ...] = tuple(_METHODS)
"""Every method a sweep can run."""


def method_class(name: str) -> type[Method]:
    """The :class:`~izero.methods.base.Method` subclass called ``name``."""
    try:
        target = _METHODS[name]
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(METHOD_NAMES)}") from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
