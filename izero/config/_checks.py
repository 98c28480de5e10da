"""Validation helpers shared by the config sections: each failure is one ConfigError line."""

from __future__ import annotations

import math
import re

from izero.errors import ConfigError

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
SECRET_HEADER_RE = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)
REDACTED = "<redacted>"


def check(ok: bool, field_name: str, value: object, allowed: str, fix: str | None = None) -> None:
    if not ok:
        raise ConfigError(field_name, value, allowed, fix or f"set {field_name} to {allowed}")


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def int_at_least(section: str, name: str, value: object, low: int) -> None:
    what = "a positive integer" if low == 1 else f"an integer >= {low}"
    check(
        isinstance(value, int) and not isinstance(value, bool) and value >= low,
        f"{section}{name}",
        value,
        what,
    )


def opt_positive(section: str, name: str, value: object) -> None:
    check(
        value is None or (is_number(value) and value > 0),
        f"{section}{name}",
        value,
        "a positive number or null (no limit)",
    )


def in_range(section: str, name: str, value: object, low: float, high: float) -> None:
    check(
        is_number(value) and low <= value <= high,
        f"{section}{name}",
        value,
        f"a number in [{low}, {high}]",
    )
