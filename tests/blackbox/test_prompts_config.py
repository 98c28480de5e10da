"""The query template and endpoint options."""

from __future__ import annotations

import pickle

import pytest

from izero.blackbox.config import EndpointConfig, Secret
from izero.blackbox.prompts import build_messages, build_query, parse_query
from izero.errors import ConfigError

from .conftest import SECRET_KEY


@pytest.mark.parametrize("instruction", ["Add the two numbers", "Line one\n\nline two", " x "])
@pytest.mark.parametrize("text", ["12 34", "", "multi\nline: Output: tricky"])
def test_query_roundtrip(instruction, text):
    query = build_query(instruction, text)
    assert query.endswith("\nOutput:")
    assert "Input: " + text in query
    assert parse_query(query) == (instruction.strip(), text)
    assert build_messages(instruction, text) == [{"role": "user", "content": query}]


def test_parse_query_rejects_other_text():
    assert parse_query("Hello there") is None


def test_key_is_never_shown_and_resolved_from_env(monkeypatch):
    monkeypatch.setenv("MY_KEY_VAR", SECRET_KEY)
    config = EndpointConfig(base_url="http://127.0.0.1:1/v1/", model="m", api_key_env="MY_KEY_VAR")
    assert config.base_url == "http://127.0.0.1:1/v1"
    assert config.key() is None
    resolved = config.resolved()
    assert resolved.key() == SECRET_KEY
    for text in (repr(resolved), str(resolved), repr(resolved.api_key), str(resolved.__dict__)):
        assert SECRET_KEY not in text
    clone = pickle.loads(pickle.dumps(resolved))
    assert clone.key() == SECRET_KEY
    assert Secret("a") == Secret("a") and Secret("a") != Secret("b")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("base_url", "127.0.0.1:8000"),
        ("model", ""),
        ("rpm", 0),
        ("tpm", -5.0),
        ("temperature", 3.0),
        ("max_tokens", 0),
        ("max_retries", -1),
        ("concurrency", 0),
        ("price_prompt_per_1k", float("nan")),
        ("max_cost", -1.0),
        ("rate_margin", 0.7),
    ],
)
def test_invalid_options_name_the_field(field, value):
    kwargs = {"base_url": "http://127.0.0.1:1/v1", "model": "m", field: value}
    with pytest.raises(ConfigError, match=field):
        EndpointConfig(**kwargs)


def test_request_params_and_cost():
    config = EndpointConfig(
        base_url="http://h/v1",
        model="m",
        max_tokens=7,
        extra_body={"top_p": 1.0},
        price_prompt_per_1k=0.5,
        price_completion_per_1k=1.5,
    )
    assert config.request_params() == {"temperature": 0.0, "max_tokens": 7, "top_p": 1.0}
    assert config.call_cost(1000, 2000) == pytest.approx(3.5)
    assert config.endpoint == "http://h/v1 (model m)"
