"""The ``prompts`` section: the generator's prompt and the black box's query, with presets.

Two presets (``prompts.preset``; explicit fields override it):

- ``izero`` (the default): InstructZero's templates as the paper gives them, inside the
  generator tokenizer's own chat template when it has one, the decoded instruction cleaned
  (first sentence, echoes removed), one query template for dev and test.
- ``instructzero-original``: the strings of the original code (github Lichang-Chen/InstructZero
  at 911f019, ``run_instructzero.py``): Vicuna's system prompt and roles written out as plain
  text (``f"{system_prompt} USER:{init_token} ASSISTANT:"``, RI:75-76,153, with
  ``init_token = "\\n" + "[full_DEMO]\\n\\nThe instruction was to?"``, RI:59,240-241), the
  decode sent raw (the clean-up is commented out, RI:160-176), and the black-box templates
  ``"Instruction: [PROMPT]\\n\\nInput: [INPUT]\\n Output: [OUTPUT]"`` for dev (RI:106) and
  ``"Instruction: [PROMPT]\\n\\nInput: [INPUT]\\n\\nOUTPUT: [OUTPUT]"`` for test (RI:239), filled
  with an empty output and stripped (``llm.py``: ``p.replace('[APE]', '').strip()``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from izero.config._checks import check
from izero.templates import check_template, placeholders

DEFAULT_PROMPTS_PRESET = "izero"

IZERO_GENERATOR_PROMPT = "{demos}\n\nThe instruction was to"
IZERO_DEMO_TEMPLATE = "Input: {input}\nOutput: {output}"
IZERO_DEMO_SEPARATOR = "\n\n"
IZERO_QUERY_TEMPLATE = "{instruction}\n\nInput: {input}\nOutput:"

VICUNA_SYSTEM_PROMPT = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions."
)
"""Vicuna's (and WizardLM's) system prompt, as the original code writes it (RI:75,78)."""
ORIGINAL_GENERATOR_PROMPT = "{system} USER:\n{demos}\n\nThe instruction was to? ASSISTANT:"
ORIGINAL_DEV_QUERY_TEMPLATE = "Instruction: {instruction}\n\nInput: {input}\n Output:"
ORIGINAL_TEST_QUERY_TEMPLATE = "Instruction: {instruction}\n\nInput: {input}\n\nOUTPUT:"

#: Prompt presets, selected with ``prompts.preset``; explicit prompts fields override them.
PROMPT_PRESETS: Mapping[str, Mapping[str, Any]] = {
    "izero": {
        "generator_prompt": IZERO_GENERATOR_PROMPT,
        "demo_template": IZERO_DEMO_TEMPLATE,
        "demo_separator": IZERO_DEMO_SEPARATOR,
        "generator_system": None,
        "use_chat_template": None,
        "clean_instruction": True,
        "query_template": IZERO_QUERY_TEMPLATE,
        "test_query_template": None,
        "query_system": None,
    },
    "instructzero-original": {
        "generator_prompt": ORIGINAL_GENERATOR_PROMPT,
        "demo_template": IZERO_DEMO_TEMPLATE,
        "demo_separator": IZERO_DEMO_SEPARATOR,
        "generator_system": VICUNA_SYSTEM_PROMPT,
        "use_chat_template": False,
        "clean_instruction": False,
        "query_template": ORIGINAL_DEV_QUERY_TEMPLATE,
        "test_query_template": ORIGINAL_TEST_QUERY_TEMPLATE,
        "query_system": None,
    },
}


@dataclass(frozen=True)
class PromptsConfig:
    """The text around the demonstrations and around each instruction.

    Generator: ``generator_prompt`` holds ``{demos}`` (the demonstrations, each
    ``demo_template`` with ``{input}`` and ``{output}``, joined by ``demo_separator``). With
    ``use_chat_template`` (``null``: when the tokenizer has one) it becomes the user turn of the
    generator tokenizer's chat template, after a system turn ``generator_system`` if set;
    without, it is the whole prompt text, and ``{system}`` in it is replaced by
    ``generator_system`` (for models whose conversation format is written out, e.g. Vicuna's
    ``"{system} USER: ... ASSISTANT:"``). ``clean_instruction``: keep the first sentence of the
    decode, echoes removed (``false``: send the decode as it is, as the original code does).

    Black box: ``query_template`` with ``{instruction}`` and ``{input}`` is the user message for
    dev examples, ``test_query_template`` for test examples (``null``: the same), after a system
    message ``query_system`` if set. Placeholders are names in braces; other braces are text.
    """

    _SECTION: ClassVar[str] = "prompts."
    _PRESETS: ClassVar[Mapping[str, Mapping[str, Any]]] = PROMPT_PRESETS

    preset: Literal["izero", "instructzero-original"] | None = None
    generator_prompt: str = IZERO_GENERATOR_PROMPT
    demo_template: str = IZERO_DEMO_TEMPLATE
    demo_separator: str = IZERO_DEMO_SEPARATOR
    generator_system: str | None = None
    use_chat_template: bool | None = None
    clean_instruction: bool = True
    query_template: str = IZERO_QUERY_TEMPLATE
    test_query_template: str | None = None
    query_system: str | None = None

    @classmethod
    def from_preset(cls, name: str, **fields: Any) -> PromptsConfig:
        """Preset ``name`` with ``fields`` overriding it."""
        check(name in PROMPT_PRESETS, "prompts.preset", name, f"one of {', '.join(PROMPT_PRESETS)}")
        return cls(**{**PROMPT_PRESETS[name], **fields, "preset": name})

    def __post_init__(self) -> None:
        s = self._SECTION
        check_template(
            f"{s}generator_prompt",
            self.generator_prompt,
            required=("demos",),
            optional=("system",),
            example=IZERO_GENERATOR_PROMPT,
        )
        check_template(
            f"{s}demo_template",
            self.demo_template,
            required=("input", "output"),
            example=IZERO_DEMO_TEMPLATE,
        )
        for name in ("query_template", "test_query_template"):
            if getattr(self, name) is not None:
                check_template(
                    f"{s}{name}",
                    getattr(self, name),
                    required=("instruction", "input"),
                    example=IZERO_QUERY_TEMPLATE,
                )
        for name in ("generator_system", "query_system"):
            value = getattr(self, name)
            check(
                value is None or bool(value.strip()),
                f"{s}{name}",
                value,
                "a non-empty system prompt, or null for none",
            )
        written_out = "system" in placeholders(self.generator_prompt)
        if written_out:
            check(
                self.use_chat_template is False,
                f"{s}use_chat_template",
                self.use_chat_template,
                "false when prompts.generator_prompt holds {system} (it is then the whole "
                "conversation, written out)",
                "set prompts.use_chat_template: false, or remove {system} from "
                "prompts.generator_prompt to use the tokenizer's chat template",
            )
            check(
                self.generator_system is not None,
                f"{s}generator_system",
                self.generator_system,
                "a system prompt, since prompts.generator_prompt holds {system}",
                "set prompts.generator_system, or remove {system} from prompts.generator_prompt",
            )
        elif self.generator_system is not None:
            check(
                self.use_chat_template is not False,
                f"{s}generator_system",
                self.generator_system,
                "null when prompts.use_chat_template is false and prompts.generator_prompt "
                "has no {system} (it would be dropped)",
                "add {system} to prompts.generator_prompt where it goes, or remove "
                "prompts.generator_system",
            )

    @property
    def dev_query(self) -> str:
        """The query template of dev examples."""
        return self.query_template

    @property
    def test_query(self) -> str:
        """The query template of test examples."""
        return self.test_query_template or self.query_template
