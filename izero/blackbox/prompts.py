"""The zero-shot query sent to the black box: one place, because the simulated server parses it.

InstructZero's template: the instruction, a blank line, then ``Input: <x>\\nOutput:``. The
query is sent as one user chat message.
"""

from __future__ import annotations

import re

INPUT_PREFIX = "Input: "
OUTPUT_PREFIX = "Output:"
QUERY_TEMPLATE = "{instruction}\n\n" + INPUT_PREFIX + "{input}\n" + OUTPUT_PREFIX

_QUERY_RE = re.compile(r"\A(?P<instruction>.*)\n\nInput: (?P<input>.*)\nOutput:\Z", re.DOTALL)


def build_query(instruction: str, example_input: str) -> str:
    """The zero-shot query text for one example under ``instruction``."""
    return QUERY_TEMPLATE.format(instruction=instruction.strip(), input=example_input)


def build_messages(instruction: str, example_input: str) -> list[dict[str, str]]:
    """The chat messages (a single user message) for one example under ``instruction``."""
    return [{"role": "user", "content": build_query(instruction, example_input)}]


def parse_query(text: str) -> tuple[str, str] | None:
    """Inverse of :func:`build_query`: ``(instruction, input)``, or ``None`` if not a query."""
    match = _QUERY_RE.match(text)
    if match is None:
        return None
    return match.group("instruction"), match.group("input")
