"""Errors that stop a scoring run. Messages name the endpoint and the fix, never the key."""

from __future__ import annotations

from izero.errors import BlackBoxError


class EndpointError(BlackBoxError):
    """The endpoint answered in a way that retrying cannot fix.

    ``status`` is the HTTP status (``None`` when there was none), ``endpoint`` is
    ``"<base_url> (model <model>)"``.
    """

    def __init__(self, message: str, *, endpoint: str, status: int | None = None, fix: str = ""):
        self.endpoint = endpoint
        self.status = status
        self.fix = fix
        text = f"{message} [endpoint {endpoint}"
        text += f", HTTP {status}]" if status is not None else "]"
        if fix:
            text += f". Fix: {fix}"
        super().__init__(text)

    def __reduce__(self):  # keep pickling (Ray) working with keyword-only arguments
        return (_rebuild, (type(self), self.args[0], self.endpoint, self.status, self.fix))


def _rebuild(cls, text, endpoint, status, fix):
    err = cls.__new__(cls)
    BlackBoxError.__init__(err, text)
    err.endpoint, err.status, err.fix = endpoint, status, fix
    return err


class AuthenticationError(EndpointError):
    """401: the API key is missing or wrong."""


class PermissionDeniedError(EndpointError):
    """403: the key may not use this model or endpoint."""


class NotFoundError(EndpointError):
    """404: wrong base URL or unknown model."""


class ContextLengthError(EndpointError):
    """400: the prompt is longer than the model's context."""


class BadRequestError(EndpointError):
    """Another 4xx the server will answer the same way every time."""


class InsufficientQuotaError(EndpointError):
    """429 with code ``insufficient_quota``: the account is out of credit, not rate limited."""


class BudgetExhaustedError(EndpointError):
    """The next paid call would exceed a configured budget cap (calls, tokens or money)."""


class ServerStartError(BlackBoxError):
    """A local black-box server (vLLM) izero starts did not become healthy; the message ends
    with the last lines of its log."""


def missing_key_error(endpoint: str, variable: str, status: int, detail: str = "") -> EndpointError:
    """A 401/403 to a request sent without a key: the variable is named (the key is absent)."""
    return AuthenticationError(
        f"no API key was sent: the environment variable {variable} is not set (or is empty), "
        f"and the endpoint requires one{f' ({detail})' if detail else ''}",
        endpoint=endpoint,
        status=status,
        fix=f"export {variable}=<your key> before running izero, or name the variable that "
        "holds it in blackbox.api_key_env",
    )


def rejected_key_error(
    endpoint: str, variable: str, status: int, detail: str = ""
) -> EndpointError:
    """A 401 to a request that carried the key read from ``variable``."""
    return AuthenticationError(
        f"the API key in {variable} was rejected{f' ({detail})' if detail else ''}",
        endpoint=endpoint,
        status=status,
        fix=f"set the environment variable {variable} to a valid key for this endpoint",
    )
