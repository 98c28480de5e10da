"""The ``proposer`` section and ``ape``'s options: one clear line per bad value, before any work."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from izero import cli
from izero.config import ProposerConfig, config_from_dict, config_to_dict, load_config
from izero.errors import ConfigError
from izero.methods.ape import ApeOptions

URL = "http://127.0.0.1:8000/v1"


def _error(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_proposer_endpoint_without_a_model_is_one_line() -> None:
    msg = _error(["methods=ape", f"proposer.base_url={URL}"])
    assert msg == (
        "config field 'proposer.model': got None; expected the model name the proposer endpoint "
        "serves. Fix: set proposer.model, e.g. --set proposer.model=gpt-4o-mini, or remove the "
        "proposer section so that the black box proposes"
    )
    assert "'proposer.model'" in _error(["proposer.model=  ", f"proposer.base_url={URL}"])
    msg = _error(["proposer.model=gpt-4o-mini"])
    assert msg.startswith("config field 'proposer.base_url': got None; expected the proposer")
    assert "http:// or https://" in _error(["proposer.model=m", "proposer.base_url=ftp://x"])


def test_sweep_with_a_proposer_without_model_stops_before_any_work(tmp_path, capsys) -> None:
    out = tmp_path / "never"
    argv = ["sweep", "--set", "methods=ape", "--set", f"proposer.base_url={URL}"]
    assert cli.main([*argv, "--set", f"output.path={out}"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "config field 'proposer.model'" in lines[0], captured.err
    assert "Traceback" not in captured.err
    assert not out.exists()  # nothing was started or written


def test_ape_with_a_local_model_black_box_needs_a_proposer() -> None:
    local = ["methods=ape", "blackbox.backend=hf", "blackbox.model=tiny:qwen2", "blackbox.rpm=null"]
    msg = _error(local)
    assert msg.startswith("config field 'proposer': got None; expected an OpenAI-compatible")
    assert "Fix: add a proposer section with base_url and model" in msg
    ok = load_config(overrides=[*local, f"proposer.base_url={URL}", "proposer.model=m"])
    assert ok.proposer == ProposerConfig(base_url=URL, model="m")
    # other methods score with a local model and need no proposer
    assert load_config(overrides=["methods=random", *local[1:]]).proposer is None


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("proposer.rpm=0", "proposer.rpm"),
        ("proposer.max_cost=-1", "proposer.max_cost"),
        ("proposer.max_calls=0", "proposer.max_calls"),
        ("proposer.price_per_1k_prompt=-0.1", "proposer.price_per_1k_prompt"),
        ("proposer.concurrency=0", "proposer.concurrency"),
        ("proposer.timeout_s=0", "proposer.timeout_s"),
        ("proposer.modle=m", "proposer.modle"),
    ],
)
def test_bad_proposer_values(override: str, field: str) -> None:
    msg = _error([f"proposer.base_url={URL}", "proposer.model=m", override])
    assert msg.startswith(f"config field '{field}'")


def test_proposer_key_is_never_accepted_or_echoed_and_headers_are_redacted() -> None:
    msg = _error([f"proposer.base_url={URL}", "proposer.model=m", "proposer.api_key_env=sk-x1"])
    assert "sk-x1" not in msg and "NAME of an environment variable" in msg
    cfg = load_config(
        overrides=[
            f"proposer.base_url={URL}",
            "proposer.model=m",
            "proposer.headers.Authorization=Bearer sk-123",
            "proposer.headers.X-Team=a",
        ]
    )
    data = config_to_dict(cfg)
    assert data["proposer"]["headers"] == {"Authorization": "<redacted>", "X-Team": "a"}
    assert "sk-123" not in json.dumps(data)
    plain = load_config(overrides=[f"proposer.base_url={URL}", "proposer.model=m"])
    assert config_from_dict(config_to_dict(plain)) == plain
    assert config_to_dict(load_config())["proposer"] is None


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ("method_options.ape.temperature=2.5", "method_options.ape.temperature"),
        ("method_options.ape.n_subsets=0", "method_options.ape.n_subsets"),
        ("method_options.ape.n_demos=0", "method_options.ape.n_demos"),
        ("method_options.ape.candidates=0", "method_options.ape.candidates"),
        ("method_options.ape.max_tokens=0", "method_options.ape.max_tokens"),
        ("method_options.ape.top_p=0", "method_options.ape.top_p"),
        ("method_options.ape.n_sub=2", "method_options.ape.n_sub"),
    ],
)
def test_bad_ape_options(override: str, field: str) -> None:
    assert _error(["methods=ape", override]).startswith(f"config field '{field}'")


def test_ape_defaults_are_apes_instruction_induction_settings() -> None:
    cfg = load_config(overrides=["methods=ape,random", "method_options.ape.candidates=40"])
    assert cfg.method_options_for("ape") == ApeOptions(candidates=40)
    o = ApeOptions()
    assert (o.n_subsets, o.n_demos, o.temperature, o.max_tokens, o.top_p) == (3, 5, 0.9, 50, 0.9)
    assert o.candidates is None  # the budget's evaluations


def test_example_config_with_a_proposer_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "methods: [ape, instructzero]\n"
        "method_options: {ape: {temperature: 0.7}}\n"
        f"proposer: {{base_url: '{URL}', model: gpt-4o, rpm: 500, max_cost: 2.5}}\n"
    )
    cfg = load_config(path)
    assert cfg.proposer.max_cost == 2.5 and cfg.proposer.rpm == 500.0
    assert cfg.method_options_for("ape").temperature == 0.7
