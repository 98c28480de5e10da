"""Instruction optimisers, one module per method, behind one protocol (:mod:`izero.methods.base`).

A method turns a run's history into the next candidates; the driver does the rest (generation,
de-duplication, scoring, recording, checkpoints). :func:`method_class` finds a method by name.
"""

from izero.methods.base import (
    Budget,
    Candidate,
    Evaluation,
    History,
    Method,
    MethodServices,
    RunInfo,
)
from izero.methods.registry import METHOD_NAMES, method_class

__all__ = [
    "METHOD_NAMES",
    "Budget",
    "Candidate",
    "Evaluation",
    "History",
    "Method",
    "MethodServices",
    "RunInfo",
    "method_class",
]
