"""Tiny offline models and tokenizer: build, determinism, round trips, loading by path."""

from __future__ import annotations

import pytest
import torch

from izero.errors import GeneratorError
from izero.hf import (
    TINY_ARCHS,
    build_tiny_model,
    build_tiny_tokenizer,
    load_causal_lm,
    parse_tiny_id,
    save_tiny_model,
)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_tiny_model_builds_and_is_deterministic_per_seed(arch: str) -> None:
    rng_before = torch.get_rng_state()
    a = build_tiny_model(arch, seed=0)
    b = build_tiny_model(arch, seed=0)
    c = build_tiny_model(arch, seed=1)
    assert torch.equal(torch.get_rng_state(), rng_before), "global RNG must be untouched"
    assert _same_weights(a, b)
    assert not _same_weights(a, c)
    tok = build_tiny_tokenizer()
    assert a.config.vocab_size >= len(tok)
    ids = tok(["The instruction was to"], return_tensors="pt")
    logits = a(**ids).logits
    assert logits.shape == (1, ids.input_ids.shape[1], a.config.vocab_size)
    assert torch.isfinite(logits).all()


def test_tiny_model_sizes_are_configurable() -> None:
    model = build_tiny_model("llama", hidden_size=32, num_layers=3, num_heads=2)
    assert model.config.hidden_size == 32
    assert model.config.num_hidden_layers == 3
    with pytest.raises(GeneratorError, match="divisible"):
        build_tiny_model("llama", hidden_size=30, num_heads=4)
    with pytest.raises(GeneratorError, match="unknown tiny architecture"):
        build_tiny_model("mamba")


@pytest.mark.parametrize(
    "text",
    [
        "The instruction was to add the two numbers.",
        "Input: 12 7\nOutput: 19",
        "Ünïcödé, émojis 🙂 and tabs\tare bytes too",
        "",
    ],
)
def test_tokenizer_round_trips_text(text: str) -> None:
    tok = build_tiny_tokenizer()
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id
    assert tok.decode(ids, skip_special_tokens=True) == text


def test_tokenizer_has_special_tokens_and_chat_template() -> None:
    tok = build_tiny_tokenizer()
    assert 500 <= len(tok) <= 2048
    assert {tok.bos_token_id, tok.eos_token_id, tok.pad_token_id} == {1, 2, 0}
    assert tok.padding_side == "left"
    text = tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text == "<s><|user|>\nhi<|end|>\n<|assistant|>\n"
    # Each call returns an independent object.
    other = build_tiny_tokenizer()
    other.padding_side = "right"
    assert tok.padding_side == "left"


def test_parse_tiny_id() -> None:
    assert parse_tiny_id("tiny:qwen2") == ("qwen2", {})
    assert parse_tiny_id("tiny:llama?hidden_size=128&num_layers=2&seed=3") == (
        "llama",
        {"hidden_size": 128, "num_layers": 2, "seed": 3},
    )
    for bad in ("tiny:bert", "tiny:llama?depth=2", "tiny:llama?hidden_size=big"):
        with pytest.raises(GeneratorError):
            parse_tiny_id(bad)


def test_load_causal_lm_tiny_and_saved_path_agree(tmp_path) -> None:
    model, tok = load_causal_lm("tiny:gpt2?hidden_size=32&num_layers=1&seed=4", device="cpu")
    assert model.dtype == torch.float32 and not model.training
    assert tok.padding_side == "left" and tok.pad_token_id is not None
    save_tiny_model("gpt2", tmp_path, seed=4, hidden_size=32, num_layers=1)
    loaded, loaded_tok = load_causal_lm(str(tmp_path), device="cpu")
    assert _same_weights(model, loaded)
    text = "Input: cat\nOutput: cats"
    assert loaded_tok(text)["input_ids"] == tok(text)["input_ids"]


def test_load_causal_lm_dtype_and_errors() -> None:
    model, _ = load_causal_lm("tiny:llama", dtype="bf16", device="cpu")
    assert model.dtype == torch.bfloat16
    with pytest.raises(GeneratorError, match="dtype"):
        load_causal_lm("tiny:llama", dtype="int3")
    # Not cached locally and downloads are off: a clear error, no network access.
    with pytest.raises(GeneratorError, match="allow_download"):
        load_causal_lm("izero-test-org/no-such-model-anywhere", device="cpu")
