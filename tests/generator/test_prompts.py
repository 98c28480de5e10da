"""The instruction-generation prompt and the clean-up of decoded text."""

from __future__ import annotations

import pytest

from izero.errors import ConfigError, GeneratorError
from izero.generator import PromptTemplate, build_prompt_text, clean_instruction
from izero.generator.prompts import EMPTY_INSTRUCTION_FALLBACK
from izero.hf import build_tiny_tokenizer

DEMOS = (("cat", "cats"), ("dog", "dogs"))
PLAIN = "Input: cat\nOutput: cats\n\nInput: dog\nOutput: dogs\n\nThe instruction was to"


class _NoChat:
    chat_template = None


def test_plain_prompt_is_instructzeros_template() -> None:
    text, is_chat = build_prompt_text(DEMOS, template=PromptTemplate(), tokenizer=_NoChat())
    assert (text, is_chat) == (PLAIN, False)


def test_chat_template_wraps_the_prompt_when_the_tokenizer_has_one() -> None:
    tok = build_tiny_tokenizer()
    text, is_chat = build_prompt_text(DEMOS, template=PromptTemplate(), tokenizer=tok)
    assert is_chat
    assert text == f"<s><|user|>\n{PLAIN}<|end|>\n<|assistant|>\n"
    off = PromptTemplate(use_chat_template=False)
    assert build_prompt_text(DEMOS, template=off, tokenizer=tok) == (PLAIN, False)
    with pytest.raises(GeneratorError, match="no chat template"):
        build_prompt_text(
            DEMOS, template=PromptTemplate(use_chat_template=True), tokenizer=_NoChat()
        )


def test_prompt_errors() -> None:
    with pytest.raises(GeneratorError, match="no demonstrations"):
        build_prompt_text((), template=PromptTemplate(), tokenizer=_NoChat())
    with pytest.raises(ConfigError):
        PromptTemplate(demo_template="Q: {input}")
    with pytest.raises(ConfigError):
        PromptTemplate(prompt_template="no demos field")
    with pytest.raises(ConfigError):
        PromptTemplate(fallback="  ")


@pytest.mark.parametrize(
    ("decoded", "expected"),
    [
        (" add the two numbers.", "add the two numbers."),
        (" add the two numbers. Then write it down.", "add the two numbers."),
        ("\n\n sort the words alphabetically\nInput: b a", "sort the words alphabetically"),
        ('The instruction was to "reverse the word"', "reverse the word"),
        ("Instruction: write the plural Input: cat Output: cats", "write the plural"),
        ("ASSISTANT: The instruction was to find the antonym", "find the antonym"),
        ("  'pluralise each noun'  ", "pluralise each noun"),
        ("multiply   by\t3.5 twice", "multiply by 3.5 twice"),
        ("na\x0fme the \ufffdcolour", "name the colour"),
        ("", EMPTY_INSTRUCTION_FALLBACK),
        ("\n \n", EMPTY_INSTRUCTION_FALLBACK),
        ("...", EMPTY_INSTRUCTION_FALLBACK),
        ("The instruction was to", EMPTY_INSTRUCTION_FALLBACK),
    ],
)
def test_clean_instruction(decoded: str, expected: str) -> None:
    assert clean_instruction(decoded) == expected


def test_clean_instruction_custom_fallback() -> None:
    assert clean_instruction(" ", fallback="Answer.") == "Answer."
