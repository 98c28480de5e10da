"""The izero exception tree.

Every error izero raises on purpose derives from :class:`IZeroError`. Messages say what was
expected, what came, and how to fix it; they never contain API keys.
"""

from __future__ import annotations


class IZeroError(Exception):
    """Root of all izero errors."""


class ConfigError(IZeroError, ValueError):
    """A configuration value is invalid. Raised before any work starts.

    The message names the field, the value, what is allowed and how to fix it.
    """

    def __init__(self, field: str, value: object, allowed: str, fix: str | None = None):
        self.field = field
        self.value = value
        self.allowed = allowed
        self.fix = fix
        msg = f"config field '{field}': got {value!r}; expected {allowed}"
        if fix:
            msg += f". Fix: {fix}"
        super().__init__(msg)


class TaskDataError(IZeroError):
    """Task data is missing, unreadable or malformed."""


class GeneratorError(IZeroError):
    """The instruction generator failed (model loading, bad inputs, actor failure)."""


class BlackBoxError(IZeroError):
    """The black-box endpoint failed in a way that stops the run."""


class OptimizerError(IZeroError):
    """Bayesian optimisation could not propose points (bad observations, failed fit)."""


class ResultsError(IZeroError):
    """Results could not be written, read, or would overwrite a finished sweep."""
