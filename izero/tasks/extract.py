"""Answer extraction: the part of a black-box answer that is compared with the accepted answers.

Reasoning tasks (the chain-of-thought experiment of the InstructZero paper: GSM8K, AQuA, SVAMP)
get answers such as ``"Tom has 3 + 4 = 7 apples, so the answer is 7."``; only the final answer
should be matched. An extraction rule picks it out before the metric runs (as the zero-shot
chain-of-thought evaluation of Kojima et al. 2022 cleans answers):

- ``last_number``: the last number in the text, thousands separators and a leading ``+`` or
  ``$`` dropped, trailing zeros of a decimal removed (``"1,234.50"`` -> ``"1234.5"``,
  ``"-3.0"`` -> ``"-3"``); no number gives ``""``.
- ``regex:<pattern>``: the last match of the Python regular expression ``<pattern>``; its first
  group when the pattern has groups, else the whole match; no match gives ``""``. Example:
  ``regex:answer is \\(?([A-E])\\)?`` for multiple-choice letters.

An extracted ``""`` scores 0 under every built-in metric. Extraction applies to the prediction
only: accepted answers are the final answers themselves (``"7"``).
"""

from __future__ import annotations

import functools
import re

from izero.errors import IZeroError

LAST_NUMBER = "last_number"
REGEX_PREFIX = "regex:"
#: The extraction rules, for messages (``regex:`` takes a pattern after the colon).
EXTRACTIONS = (LAST_NUMBER, REGEX_PREFIX + "<pattern>")

# A number: optional sign, digits with optional thousands commas, optional decimals; or ".5".
_NUMBER_RE = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+")


class ExtractionError(IZeroError, ValueError):
    """An answer-extraction rule is not one izero knows, or its pattern does not compile."""


def canonical_number(text: str) -> str | None:
    """``text`` as a canonical number string (``"1,234.50"`` -> ``"1234.5"``), or None.

    Leading/trailing whitespace, a leading ``$`` or ``+`` and a trailing ``.`` are ignored.
    """
    t = text.strip().rstrip(".").lstrip("$").replace(",", "")
    if t.startswith("+"):
        t = t[1:]
    try:
        value = float(t)
    except ValueError:
        return None
    if value != value or value in (float("inf"), float("-inf")):
        return None
    if "." in t or "e" in t.lower():
        if value == int(value) and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    return str(int(t))


@functools.lru_cache(maxsize=64)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def check_extraction(rule: str | None) -> None:
    """Raise :class:`ExtractionError` unless ``rule`` is None, ``last_number`` or a valid
    ``regex:<pattern>``."""
    if rule is None or rule == LAST_NUMBER:
        return
    if isinstance(rule, str) and rule.startswith(REGEX_PREFIX):
        pattern = rule[len(REGEX_PREFIX) :]
        if not pattern:
            raise ExtractionError(
                f"answer extraction {rule!r} has an empty pattern. Fix: write "
                "regex:<pattern>, e.g. regex:answer is (\\w+)"
            )
        try:
            _compiled(pattern)
        except re.error as exc:
            raise ExtractionError(
                f"answer extraction {rule!r}: the pattern does not compile ({exc}). Fix: write "
                "a Python regular expression after 'regex:'"
            ) from exc
        return
    raise ExtractionError(
        f"unknown answer extraction {rule!r}; expected one of {', '.join(EXTRACTIONS)} or none. "
        "Fix: use one of those"
    )


def extract_answer(text: str, rule: str | None) -> str:
    """The part of ``text`` that ``rule`` picks (``text`` itself when ``rule`` is None).

    Raises:
        ExtractionError: unknown rule or a pattern that does not compile.
    """
    if rule is None:
        return text
    if rule == LAST_NUMBER:
        for match in reversed(_NUMBER_RE.findall(text)):
            number = canonical_number(match)
            if number is not None:
                return number
        return ""
    check_extraction(rule)
    matches = list(_compiled(rule[len(REGEX_PREFIX) :]).finditer(text))
    if not matches:
        return ""
    last = matches[-1]
    picked = last.group(1) if last.re.groups else last.group(0)
    return (picked or "").strip()
