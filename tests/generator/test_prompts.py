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


# -- configurable templates: the presets of izero.config.prompts ---------------------------------

# The original code's generator prompt, written out from run_instructzero.py at 911f019:
# input_text = f"{self.system_prompt} USER:{self.init_token} ASSISTANT:" (RI:153) with Vicuna's
# system prompt (RI:75), init_token = "\n" + init_qa (RI:59, init_prompt = ['\n'], RI:240) and
# init_qa = "[full_DEMO]\n\nThe instruction was to?" (RI:241) over "Input: [INPUT]\nOutput:
# [OUTPUT]" demos joined by "\n\n" (RI:238, template.py DemosTemplate).
VICUNA = (
    "A chat between a curious user and an artificial intelligence assistant. The assistant "
    "gives helpful, detailed, and polite answers to the user's questions."
)
ORIGINAL_TEXT = (
    VICUNA + " USER:\nInput: cat\nOutput: cats\n\nInput: dog\nOutput: dogs\n\n"
    "The instruction was to? ASSISTANT:"
)


def _template(preset: str, **fields):
    from izero.config import PromptsConfig
    from izero.driver.stages import prompt_template

    return prompt_template(PromptsConfig.from_preset(preset, **fields))


@pytest.mark.parametrize("tokenizer", [build_tiny_tokenizer(), _NoChat()], ids=["chat", "plain"])
def test_original_preset_renders_the_original_generator_prompt(tokenizer) -> None:
    """Whether or not the tokenizer has a chat template, the original preset writes Vicuna's
    conversation out as plain text, exactly as the original code does."""
    text, is_chat = build_prompt_text(
        DEMOS, template=_template("instructzero-original"), tokenizer=tokenizer
    )
    assert (text, is_chat) == (ORIGINAL_TEXT, False)


def test_original_preset_prompt_ids_start_with_bos_and_decode_raw(llama_generator) -> None:
    """The prompt is tokenized with the bos token in front (the original's tokenizer call adds
    it; the soft prompt goes before it), and the decode goes out raw, not cleaned."""
    from izero.generator import GenerationRequest, InstructionGenerator

    gen = InstructionGenerator(
        model_and_tokenizer=(llama_generator.model, llama_generator.tokenizer),
        device="cpu",
        max_new_tokens=16,
        eos_token_id=None,
        template=_template("instructzero-original"),
    )
    tok = gen.tokenizer
    ids = gen.prompt_token_ids(DEMOS)
    assert ids[0] == tok.bos_token_id
    assert ids == list(tok(ORIGINAL_TEXT)["input_ids"])
    assert tok.decode(ids, skip_special_tokens=True) == ORIGINAL_TEXT
    requests = [GenerationRequest(demos=DEMOS, z=(0.1 * k,) * 10) for k in range(-3, 4)]
    raw = gen.generate_texts(requests)
    assert gen.generate(requests) == raw
    cleaned = InstructionGenerator(
        model_and_tokenizer=(gen.model, gen.tokenizer),
        device="cpu",
        max_new_tokens=16,
        eos_token_id=None,
        template=_template("instructzero-original", clean_instruction=True),
    ).generate(requests)
    assert cleaned == [clean_instruction(t) for t in raw] and cleaned != raw


def test_izero_preset_is_the_default_template() -> None:
    assert _template("izero") == PromptTemplate()
    tok = build_tiny_tokenizer()
    assert build_prompt_text(DEMOS, template=_template("izero"), tokenizer=tok) == (
        f"<s><|user|>\n{PLAIN}<|end|>\n<|assistant|>\n",
        True,
    )
    assert build_prompt_text(DEMOS, template=_template("izero"), tokenizer=_NoChat()) == (
        PLAIN,
        False,
    )


def test_system_prompt_goes_into_the_chat_template_or_is_refused() -> None:
    template = PromptTemplate(system_prompt="Be brief.")
    text, is_chat = build_prompt_text(DEMOS, template=template, tokenizer=build_tiny_tokenizer())
    assert is_chat
    assert text == f"<s><|system|>\nBe brief.<|end|>\n<|user|>\n{PLAIN}<|end|>\n<|assistant|>\n"
    with pytest.raises(GeneratorError, match="no chat template to put it in"):
        build_prompt_text(DEMOS, template=template, tokenizer=_NoChat())
    # written out with {system}: the same text with or without a chat template
    written = PromptTemplate(
        prompt_template="{system}\n\n{demos}\n\nThe instruction was to",
        system_prompt="Be brief.",
        use_chat_template=False,
    )
    for tok in (build_tiny_tokenizer(), _NoChat()):
        assert build_prompt_text(DEMOS, template=written, tokenizer=tok) == (
            f"Be brief.\n\n{PLAIN}",
            False,
        )


def test_placeholders_fill_once_and_braces_are_text() -> None:
    """Demo values that look like placeholders stay as they are; other braces are literal."""
    template = PromptTemplate(prompt_template='{"task": 1}\n{demos}\nThe instruction was to')
    text, _ = build_prompt_text((("{output}", "{demos}"),), template=template, tokenizer=_NoChat())
    assert text == '{"task": 1}\nInput: {output}\nOutput: {demos}\nThe instruction was to'


@pytest.mark.parametrize(
    ("fields", "field", "fix"),
    [
        ({"prompt_template": "Demos: {demo}"}, "prompts.generator_prompt", "'{demo}'"),
        ({"prompt_template": "{demos} {demos}"}, "prompts.generator_prompt", "keep one {demos}"),
        ({"demo_template": "In: {input}"}, "prompts.demo_template", "add {output}"),
        ({"prompt_template": "{system} {demos}"}, "prompts.generator_prompt", "use_chat_template"),
        (
            {"system_prompt": "Be brief.", "use_chat_template": False},
            "prompts.generator_system",
            "add {system}",
        ),
    ],
)
def test_bad_generator_templates_are_refused(fields, field, fix) -> None:
    with pytest.raises(ConfigError) as err:
        PromptTemplate(**fields)
    assert err.value.field == field and fix in str(err.value)
    assert "\n" not in str(err.value)
