"""The ``prompts`` and ``data`` sections and the top-level ``instructzero-original`` preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from izero import cli
from izero.config import (
    PROMPT_PRESETS,
    DataConfig,
    PromptsConfig,
    SweepConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from izero.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def test_defaults_are_the_izero_preset() -> None:
    cfg = load_config()
    assert cfg.preset is None and cfg.data == DataConfig()
    assert cfg.prompts == PromptsConfig() == PromptsConfig(**PROMPT_PRESETS["izero"])
    assert cfg.prompts.generator_prompt == "{demos}\n\nThe instruction was to"
    assert (
        cfg.prompts.dev_query
        == cfg.prompts.test_query
        == ("{instruction}\n\nInput: {input}\nOutput:")
    )
    assert cfg.prompts.clean_instruction and cfg.prompts.use_chat_template is None
    assert (cfg.data.word_in_context_answers, cfg.data.dev_sampling) == ("all", "fixed")


def test_original_preset_sets_its_sections_and_explicit_fields_win() -> None:
    cfg = load_config(overrides=["preset=instructzero-original"])
    p = cfg.prompts
    assert cfg.preset == "instructzero-original" and p.preset == "instructzero-original"
    assert p.generator_prompt == "{system} USER:\n{demos}\n\nThe instruction was to? ASSISTANT:"
    assert p.generator_system == (
        "A chat between a curious user and an artificial intelligence assistant. The assistant "
        "gives helpful, detailed, and polite answers to the user's questions."
    )
    assert p.use_chat_template is False and p.clean_instruction is False
    assert p.dev_query == "Instruction: {instruction}\n\nInput: {input}\n Output:"
    assert p.test_query == "Instruction: {instruction}\n\nInput: {input}\n\nOUTPUT:"
    assert cfg.generator.max_new_tokens == 128
    assert cfg.data == DataConfig(word_in_context_answers="output", dev_sampling="per_evaluation")
    # what it leaves alone: the budget and the rest of each section
    assert cfg.budget == SweepConfig().budget and cfg.generator.model == "tiny:llama"

    mixed = load_config(
        overrides=[
            "preset=instructzero-original",
            "generator.max_new_tokens=64",
            "prompts.clean_instruction=true",
            "data.dev_sampling=fixed",
            "budget.preset=smoke",
        ]
    )
    assert mixed.generator.max_new_tokens == 64 and mixed.prompts.clean_instruction
    assert mixed.prompts.dev_query == p.dev_query  # the rest of the preset still applies
    assert mixed.data == DataConfig(word_in_context_answers="output", dev_sampling="fixed")
    assert mixed.budget.preset == "smoke" and mixed.budget.n_init == 4
    # a prompts preset of its own beats the top-level one
    own = load_config(overrides=["preset=instructzero-original", "prompts.preset=izero"])
    assert own.prompts == PromptsConfig.from_preset("izero")
    assert own.generator.max_new_tokens == 128
    assert config_from_dict(config_to_dict(mixed)) == mixed


@pytest.mark.parametrize(
    ("override", "field", "says"),
    [
        (
            'prompts.query_template="Answer: {input}"',
            "prompts.query_template",
            "Fix: add {instruction} where the instruction goes",
        ),
        (
            'prompts.test_query_template="{instruction} then Output:"',
            "prompts.test_query_template",
            "Fix: add {input}",
        ),
        (
            'prompts.query_template="{instruction} {input} {instruction}"',
            "prompts.query_template",
            "keep one {instruction}",
        ),
        (
            'prompts.query_template="{instruction}\\nInput: {inptu}"',
            "prompts.query_template",
            "'{inptu}' is not a placeholder here",
        ),
        ("prompts.generator_prompt=The instruction was to", "prompts.generator_prompt", "{demos}"),
        ('prompts.demo_template="Q: {input}"', "prompts.demo_template", "add {output}"),
        (
            'prompts.generator_prompt="{system} {demos} ASSISTANT:"',
            "prompts.use_chat_template",
            "set prompts.use_chat_template: false",
        ),
        ("prompts.query_system=' '", "prompts.query_system", "a non-empty system prompt"),
        ("prompts.preset=original", "prompts.preset", "one of izero, instructzero-original"),
        ("preset=paper", "preset", "one of izero, instructzero-original"),
        ("data.dev_sampling=each", "data.dev_sampling", "one of fixed, per_evaluation"),
        ("data.word_in_context_answers=first", "data.word_in_context_answers", "all, output"),
    ],
)
def test_bad_prompts_and_data_are_refused_in_one_line(override, field, says) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=[override])
    assert info.value.field == field
    assert says in str(info.value) and "\n" not in str(info.value)


def test_system_prompt_without_a_place_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"add \{system\} to prompts\.generator_prompt"):
        config_from_dict({"prompts": {"generator_system": "Be brief.", "use_chat_template": False}})
    with pytest.raises(ConfigError, match=r"set prompts\.generator_system"):
        config_from_dict(
            {"prompts": {"generator_prompt": "{system} {demos}", "use_chat_template": False}}
        )
    # with the chat template (or auto) a system prompt is a system turn: accepted
    assert config_from_dict({"prompts": {"generator_system": "Be brief."}}).prompts


def test_cli_refuses_a_template_without_instruction_in_one_line(capsys) -> None:
    argv = ["validate", "--set", 'prompts.query_template="Input: {input}\\nOutput:"']
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("izero: error: config field ")
    assert "'prompts.query_template'" in err[0] and "add {instruction}" in err[0]
    assert "'Input: {input}\\nOutput:'" in err[0]  # the value as YAML read it, on one line
    # unquoted, YAML reads the braces as a mapping: the fix says to quote it
    assert cli.main(["validate", "--set", "prompts.query_system={input}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "quote the text" in err[0]


def test_multiline_template_through_set_and_yaml(tmp_path: Path) -> None:
    """A template with newlines: YAML double quotes in --set, or a block scalar in a file."""
    escaped = r"Q: {instruction}\n\n{input}\nA:"  # backslash-n: YAML's escape in double quotes
    cfg = load_config(overrides=[f'prompts.query_template="{escaped}"'])
    assert cfg.prompts.dev_query == "Q: {instruction}\n\n{input}\nA:"
    path = tmp_path / "c.yaml"
    path.write_text("prompts:\n  query_template: |-\n    Q: {instruction}\n\n    {input}\n    A:\n")
    assert load_config(path).prompts == cfg.prompts


def test_original_example_config_loads(data_dir: Path) -> None:
    cfg = load_config(
        REPO / "jobs" / "configs" / "instructzero_original.yaml", overrides=[f"data_dir={data_dir}"]
    )
    assert cfg.preset == "instructzero-original" and cfg.budget.n_demos == 10
    assert cfg.prompts == PromptsConfig.from_preset("instructzero-original")
    assert "word_in_context" in cfg.tasks and cfg.data.word_in_context_answers == "output"
    assert cfg.blackbox.model == "gpt-3.5-turbo" and cfg.blackbox.max_tokens == 256
