"""Metric plug-ins used by the tests (imported by name, as a user's module would be)."""

from __future__ import annotations

CALLS: list[tuple[str, tuple[str, ...]]] = []


def recording(prediction, answers):
    """Records its arguments; 1.0 when the prediction is the first answer."""
    CALLS.append((prediction, answers))
    return prediction == answers[0]


def half(prediction, answers):
    return 0.5


def broken(prediction, answers):
    return 1 / 0


def too_big(prediction, answers):
    return 1.5


def not_a_number(prediction, answers):
    return "yes"


def nan(prediction, answers):
    return float("nan")


NOT_CALLABLE = 3
