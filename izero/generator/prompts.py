"""The instruction-generation prompt and the clean-up of what the model decodes.

InstructZero's prompt (after APE's forward template) shows the demonstrations as
``Input: ...\\nOutput: ...`` blocks and ends with ``The instruction was to``; the model completes
the sentence. When the tokenizer has a chat template (instruction-tuned checkpoints such as
Vicuna, Llama-2-chat, Qwen2-Instruct) that text becomes the user turn of the model's own template
with the generation prompt appended; the model then often answers with a whole sentence
("The instruction was to ..."), which :func:`clean_instruction` strips back to the instruction.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from izero.errors import ConfigError, GeneratorError

DEMO_TEMPLATE = "Input: {input}\nOutput: {output}"
"""One demonstration (InstructZero / APE)."""

DEMO_SEPARATOR = "\n\n"
QUESTION = "The instruction was to"
"""The sentence the model completes (InstructZero's ``prompt_gen_template`` ends with it)."""

PROMPT_TEMPLATE = "{demos}\n\n" + QUESTION
"""InstructZero's ``"[full_DEMO]\\n\\nThe instruction was to"``."""

EMPTY_INSTRUCTION_FALLBACK = "Follow the pattern of the examples."
"""Returned when nothing usable was decoded (an empty string would score as a real instruction)."""

_ECHO_PREFIXES = (
    QUESTION,
    "the instruction is to",
    "instruction:",
    "the instruction:",
    "assistant:",
    "answer:",
    "output:",
)
_STOP_MARKERS = re.compile(r"\b(?:Input|Output|USER|ASSISTANT)\s*:", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_QUOTES = "\"'`“”‘’«»"


@dataclass(frozen=True)
class PromptTemplate:
    """How demonstrations become a generation prompt.

    Attributes:
        demo_template: one demonstration, with ``{input}`` and ``{output}`` fields.
        demo_separator: text between demonstrations.
        prompt_template: the whole prompt, with a ``{demos}`` field; must end with the sentence
            the model completes.
        use_chat_template: wrap in the tokenizer's chat template: ``None`` = when it has one.
        fallback: the instruction returned when the cleaned decode is empty.
    """

    demo_template: str = DEMO_TEMPLATE
    demo_separator: str = DEMO_SEPARATOR
    prompt_template: str = PROMPT_TEMPLATE
    use_chat_template: bool | None = None
    fallback: str = EMPTY_INSTRUCTION_FALLBACK

    def __post_init__(self) -> None:
        for field in ("{input}", "{output}"):
            if field not in self.demo_template:
                raise ConfigError(
                    "generator.demo_template", self.demo_template, f"text with {field}"
                )
        if "{demos}" not in self.prompt_template:
            raise ConfigError(
                "generator.prompt_template", self.prompt_template, "text with {demos}"
            )
        if not self.fallback.strip():
            raise ConfigError("generator.fallback", self.fallback, "a non-empty instruction")


def format_demos(demos: Sequence[tuple[str, str]], template: PromptTemplate) -> str:
    """The demonstrations as one block of ``Input: ..\\nOutput: ..`` separated by blank lines."""
    if not demos:
        raise GeneratorError(
            "no demonstrations given; the generation prompt needs at least one (input, output) "
            "pair. Fix: pass TaskSplits.demos as ((input, output), ...)."
        )
    blocks = [template.demo_template.format(input=i, output=o) for i, o in demos]
    return template.demo_separator.join(blocks)


def build_prompt_text(
    demos: Sequence[tuple[str, str]], *, template: PromptTemplate, tokenizer: Any
) -> tuple[str, bool]:
    """The prompt text and whether it is chat-formatted (it then carries its own bos token).

    Returns ``(text, is_chat)``; tokenize chat text with ``add_special_tokens=False``.
    """
    body = template.prompt_template.format(demos=format_demos(demos, template))
    use_chat = template.use_chat_template
    has_chat = getattr(tokenizer, "chat_template", None) is not None
    if use_chat is None:
        use_chat = has_chat
    if use_chat and not has_chat:
        raise GeneratorError(
            "use_chat_template=True but the tokenizer has no chat template; set "
            "use_chat_template=None (auto) or False, or load a chat checkpoint."
        )
    if not use_chat:
        return body, False
    messages = [{"role": "user", "content": body}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, True


def clean_instruction(text: str, *, fallback: str = EMPTY_INSTRUCTION_FALLBACK) -> str:
    """One clean instruction from a decoded completion.

    Drops control characters and undecodable bytes, strips template echoes ("The instruction
    was to", "Instruction:", role labels), keeps the first non-empty line and its first
    sentence, cuts where the model starts writing new demonstrations ("Input:"/"Output:"),
    removes surrounding quotes and collapses whitespace.
    Returns ``fallback`` when nothing is left.
    """
    text = "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")
    text = text.replace("\ufffd", "")
    line = next((ln.strip() for ln in text.splitlines() if ln.strip(_QUOTES + " \t")), "")
    changed = True
    while changed:
        changed = False
        line = line.strip().strip(_QUOTES).strip()
        for prefix in _ECHO_PREFIXES:
            if line.lower().startswith(prefix.lower()):
                line = line[len(prefix) :].lstrip(" :,-")
                changed = True
    stop = _STOP_MARKERS.search(line)
    if stop:
        line = line[: stop.start()]
    line = _SENTENCE_END.split(line, maxsplit=1)[0]
    line = " ".join(line.split()).strip(_QUOTES + " ")
    if not any(ch.isalnum() for ch in line):
        return fallback
    return line
