"""The instruction-generation prompt and the clean-up of what the model decodes.

InstructZero's prompt (after APE's forward template) shows the demonstrations as
``Input: ...\\nOutput: ...`` blocks and ends with ``The instruction was to``; the model completes
the sentence. When the tokenizer has a chat template (instruction-tuned checkpoints such as
Vicuna, Llama-2-chat, Qwen2-Instruct) that text becomes the user turn of the model's own template
(after a system turn, if the template has a system prompt) with the generation prompt appended;
the model then often answers with a whole sentence ("The instruction was to ..."), which
:func:`clean_instruction` strips back to the instruction. A template may instead write the
conversation out itself, with a ``{system}`` placeholder (the original InstructZero code's
``"{system} USER:\\n{demos}\\n\\nThe instruction was to? ASSISTANT:"``), and may send the decode
raw (``clean=False``).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from izero.errors import ConfigError, GeneratorError
from izero.templates import check_template, fill, placeholders

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
            the model completes. An optional ``{system}`` field makes it the whole conversation
            written out (then ``use_chat_template`` must be ``False``).
        use_chat_template: wrap in the tokenizer's chat template: ``None`` = when it has one.
        system_prompt: the system turn of the chat template, or the text of ``{system}``
            (``None``: none).
        clean: return :func:`clean_instruction` of the decode (``False``: the decode as it is).
        fallback: the instruction returned when the cleaned decode is empty.
    """

    demo_template: str = DEMO_TEMPLATE
    demo_separator: str = DEMO_SEPARATOR
    prompt_template: str = PROMPT_TEMPLATE
    use_chat_template: bool | None = None
    system_prompt: str | None = None
    clean: bool = True
    fallback: str = EMPTY_INSTRUCTION_FALLBACK

    def __post_init__(self) -> None:
        check_template("prompts.demo_template", self.demo_template, required=("input", "output"))
        check_template(
            "prompts.generator_prompt",
            self.prompt_template,
            required=("demos",),
            optional=("system",),
            example=PROMPT_TEMPLATE,
        )
        if self.writes_conversation:
            if self.use_chat_template is not False or self.system_prompt is None:
                raise ConfigError(
                    "prompts.generator_prompt",
                    self.prompt_template,
                    "{system} only with use_chat_template=False and a system prompt",
                    "set prompts.use_chat_template: false and prompts.generator_system",
                )
        elif self.system_prompt is not None and self.use_chat_template is False:
            raise ConfigError(
                "prompts.generator_system",
                self.system_prompt,
                "None without a chat template and without {system} in the prompt",
                "add {system} to prompts.generator_prompt or remove the system prompt",
            )
        if not self.fallback.strip():
            raise ConfigError("generator.fallback", self.fallback, "a non-empty instruction")

    @property
    def writes_conversation(self) -> bool:
        """Whether the prompt writes the conversation out itself (it holds ``{system}``)."""
        return "system" in placeholders(self.prompt_template)

    def finish(self, decoded: str) -> str:
        """The instruction sent to the black box for a raw ``decoded`` completion."""
        return clean_instruction(decoded, fallback=self.fallback) if self.clean else decoded


def format_demos(demos: Sequence[tuple[str, str]], template: PromptTemplate) -> str:
    """The demonstrations as one block of ``Input: ..\\nOutput: ..`` separated by blank lines."""
    if not demos:
        raise GeneratorError(
            "no demonstrations given; the generation prompt needs at least one (input, output) "
            "pair. Fix: pass TaskSplits.demos as ((input, output), ...)."
        )
    blocks = [fill(template.demo_template, {"input": i, "output": o}) for i, o in demos]
    return template.demo_separator.join(blocks)


def build_prompt_text(
    demos: Sequence[tuple[str, str]], *, template: PromptTemplate, tokenizer: Any
) -> tuple[str, bool]:
    """The prompt text and whether it is chat-formatted (it then carries its own bos token).

    Returns ``(text, is_chat)``; tokenize chat text with ``add_special_tokens=False``.
    """
    system = template.system_prompt
    values = {"demos": format_demos(demos, template)}
    if template.writes_conversation:
        values["system"] = system or ""
    body = fill(template.prompt_template, values)
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
        if system is not None and not template.writes_conversation:
            raise GeneratorError(
                "prompts.generator_system is set but the tokenizer has no chat template to put "
                "it in. Fix: write the conversation out in prompts.generator_prompt with "
                "{system} and set prompts.use_chat_template: false, or remove the system prompt"
            )
        return body, False
    messages = [{"role": "user", "content": body}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # e.g. a template that refuses a system turn
        raise GeneratorError(
            f"the tokenizer's chat template failed on the generation prompt ({err}). Fix: "
            "remove prompts.generator_system if the model has no system turn, or set "
            "prompts.use_chat_template: false"
        ) from err
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
