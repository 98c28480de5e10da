"""Saved tiny model folders: the CLI, and reading the input embeddings without the model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from izero.errors import GeneratorError
from izero.hf import TINY_ARCHS, build_tiny_model, load_causal_lm, save_tiny_model
from izero.hf.checkpoint import load_input_embeddings, resolve_model_dir

REPO = Path(__file__).resolve().parents[2]


def test_cli_saves_a_folder_that_loads_like_the_tiny_id(tmp_path: Path) -> None:
    out = tmp_path / "qwen"
    cmd = ["-m", "izero.hf.tiny", "--save", str(out), "--arch", "qwen2", "--seed", "3"]
    proc = subprocess.run(
        [sys.executable, *cmd],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert "Warning" not in proc.stderr  # runs once, as __main__
    model, tok = load_causal_lm(str(out), device="cpu")
    ref = build_tiny_model("qwen2", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), ref.parameters(), strict=True))
    assert tok.chat_template and (out / "tokenizer_config.json").is_file()
    assert model.config.hidden_size // model.config.num_attention_heads == 32  # vLLM-servable


@pytest.mark.parametrize("arch", TINY_ARCHS)
def test_input_embeddings_are_read_from_the_checkpoint(arch: str, tmp_path: Path) -> None:
    path = save_tiny_model(arch, tmp_path / arch, seed=1)
    want = build_tiny_model(arch, seed=1).get_input_embeddings().weight
    got = load_input_embeddings(path, dtype=torch.float32)
    assert torch.equal(got, want)
    assert load_input_embeddings(path, dtype=torch.bfloat16).dtype == torch.bfloat16
    assert resolve_model_dir(str(path)) == path


def test_sharded_and_bin_checkpoints(tmp_path: Path) -> None:
    model = build_tiny_model("gpt2", seed=2)
    want = model.get_input_embeddings().weight
    sharded = tmp_path / "sharded"
    model.save_pretrained(sharded, max_shard_size="100KB")
    assert (sharded / "model.safetensors.index.json").is_file()
    assert torch.equal(load_input_embeddings(sharded, dtype=torch.float32), want)
    # An old-style GPT-2 checkpoint: pytorch_model.bin, names without the "transformer." prefix.
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    model.config.save_pretrained(legacy)
    state = {k.removeprefix("transformer."): v for k, v in model.state_dict().items()}
    torch.save(state, legacy / "pytorch_model.bin")
    assert torch.equal(load_input_embeddings(legacy, dtype=torch.float32), want)
    (legacy / "pytorch_model.bin").unlink()
    with pytest.raises(GeneratorError, match="no input-embedding weight"):
        load_input_embeddings(legacy, dtype=torch.float32)


def test_unknown_model_is_a_clear_error_without_network() -> None:
    with pytest.raises(GeneratorError, match="downloads are off"):
        resolve_model_dir("izero-test-org/no-such-model-anywhere")
