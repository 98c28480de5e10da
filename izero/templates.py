"""Prompt text with named placeholders (``{demos}``, ``{instruction}``, ...): check, fill, parse.

Shared by the generator prompt and the black-box query. A placeholder is a name in braces; any
other brace is literal text (no ``{{`` escaping, so templates may hold JSON or code). Filling is
one pass, so a value that itself contains ``{input}`` is never filled again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from izero.errors import ConfigError

PLACEHOLDER_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def placeholders(text: str) -> list[str]:
    """The placeholder names of ``text`` in order of appearance (repeats included)."""
    return PLACEHOLDER_RE.findall(text)


def check_template(
    field: str,
    text: object,
    *,
    required: Iterable[str],
    optional: Iterable[str] = (),
    example: str | None = None,
) -> None:
    """Refuse ``text`` unless it is a string holding each ``required`` placeholder exactly once,
    each ``optional`` one at most once, and no other placeholder.

    Raises:
        ConfigError: one line naming ``field``, the value, what is allowed and the fix.
    """
    required = tuple(required)
    allowed = (*required, *optional)
    shown = ", ".join("{" + p + "}" for p in allowed)
    what = f"text with {', '.join('{' + p + '}' for p in required)} exactly once"
    if optional:
        what += f" (and optionally {', '.join('{' + p + '}' for p in optional)})"
    if not isinstance(text, str):
        raise ConfigError(field, text, what)
    found = placeholders(text)
    for name in found:
        if name not in allowed:
            raise ConfigError(
                field,
                text,
                what,
                f"'{{{name}}}' is not a placeholder here (allowed: {shown}); fix its spelling "
                "or remove it",
            )
    for name in allowed:
        count = found.count(name)
        if name in required and count == 0:
            fix = f"add {{{name}}} where the {name.replace('_', ' ')} goes"
            if example is not None:
                fix += f", e.g. {example!r}"
            raise ConfigError(field, text, what, fix)
        if count > 1:
            raise ConfigError(field, text, what, f"keep one {{{name}}} and remove the others")


def fill(text: str, values: Mapping[str, str]) -> str:
    """``text`` with each placeholder replaced by ``values[name]`` in one pass (placeholders
    without a value are left as they are)."""

    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        return values[name] if name in values else match.group(0)

    return PLACEHOLDER_RE.sub(sub, text)


def compile_parser(text: str, *, greedy: Iterable[str] = ()) -> re.Pattern[str]:
    """A regex that matches what :func:`fill` makes of ``text`` (surrounding whitespace
    ignored), with one named group per placeholder.

    Groups named in ``greedy`` take as much text as they can, the others as little: with
    ``greedy=("instruction",)`` an instruction that itself contains ``"\\n\\nInput: "`` is kept
    whole and the input is what follows the *last* ``"Input: "``.
    """
    greedy = set(greedy)
    body = text.strip()
    parts: list[str] = []
    pos = 0
    for match in PLACEHOLDER_RE.finditer(body):
        parts.append(re.escape(body[pos : match.start()]))
        name = match.group(1)
        parts.append(f"(?P<{name}>.*)" if name in greedy else f"(?P<{name}>.*?)")
        pos = match.end()
    parts.append(re.escape(body[pos:]))
    return re.compile(r"\A\s*" + "".join(parts) + r"\s*\Z", re.DOTALL)
