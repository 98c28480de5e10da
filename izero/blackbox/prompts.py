"""The zero-shot query sent to the black box: one place, because the simulated server parses it.

A :class:`QueryTemplate` holds the text of the user message, with ``{instruction}`` and
``{input}`` placeholders, and an optional system prompt. izero's default (InstructZero's
template as the paper gives it): the instruction, a blank line, then ``Input: <x>\\nOutput:``.
The rendered message is stripped of surrounding whitespace (as the original client does); the
instruction itself is stripped too unless ``strip_instruction=False`` (the original code sends
the decoded instruction exactly as decoded).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from izero.errors import ConfigError
from izero.templates import check_template, compile_parser, fill

INPUT_PREFIX = "Input: "
OUTPUT_PREFIX = "Output:"
QUERY_TEMPLATE = "{instruction}\n\nInput: {input}\nOutput:"
"""izero's query: ``"{instruction}\\n\\nInput: {input}\\nOutput:"``."""

QUERY_PLACEHOLDERS = ("instruction", "input")


@dataclass(frozen=True)
class QueryTemplate:
    """How an instruction and one example input become the black box's chat messages.

    Attributes:
        template: the user message, with ``{instruction}`` and ``{input}`` exactly once each.
        system: a system message sent before it (``None``: none).
        strip_instruction: strip whitespace around the instruction before filling it in.
    """

    template: str = QUERY_TEMPLATE
    system: str | None = None
    strip_instruction: bool = True

    def __post_init__(self) -> None:
        check_template(
            "prompts.query_template",
            self.template,
            required=QUERY_PLACEHOLDERS,
            example=QUERY_TEMPLATE,
        )
        if self.system is not None and not self.system.strip():
            raise ConfigError(
                "prompts.query_system", self.system, "a non-empty system prompt or null"
            )

    def query(self, instruction: str, example_input: str) -> str:
        """The user message for one example under ``instruction``."""
        if self.strip_instruction:
            instruction = instruction.strip()
        return fill(self.template, {"instruction": instruction, "input": example_input}).strip()

    def messages(self, instruction: str, example_input: str) -> list[dict[str, str]]:
        """The chat messages: the system prompt (if any), then the user message."""
        head = [] if self.system is None else [{"role": "system", "content": self.system}]
        return [*head, {"role": "user", "content": self.query(instruction, example_input)}]

    def parse(self, text: str) -> tuple[str, str] | None:
        """Inverse of :meth:`query`: ``(instruction, input)``, or ``None`` if ``text`` is not a
        query of this template. An instruction that itself contains the template's text
        (a raw decode that goes on with ``"Input: ..."``) is kept whole."""
        match = _parser(self.template).match(text)
        if match is None:
            return None
        return match.group("instruction"), match.group("input")


DEFAULT_QUERY = QueryTemplate()


@functools.lru_cache(maxsize=64)
def _parser(template: str) -> re.Pattern[str]:
    return compile_parser(template, greedy=("instruction",))


def build_query(instruction: str, example_input: str, template: QueryTemplate | None = None) -> str:
    """The zero-shot query text for one example under ``instruction``."""
    return (template or DEFAULT_QUERY).query(instruction, example_input)


def build_messages(
    instruction: str, example_input: str, template: QueryTemplate | None = None
) -> list[dict[str, str]]:
    """The chat messages for one example under ``instruction`` (``None``: izero's template)."""
    return (template or DEFAULT_QUERY).messages(instruction, example_input)


def parse_query(text: str, template: QueryTemplate | None = None) -> tuple[str, str] | None:
    """Inverse of :func:`build_query`: ``(instruction, input)``, or ``None`` if not a query."""
    return (template or DEFAULT_QUERY).parse(text)
