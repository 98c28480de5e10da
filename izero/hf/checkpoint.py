"""Reading parts of a Hugging Face checkpoint folder without loading the model.

Engines that serve a model from another process (vLLM) still need, in the caller's process, the
tokenizer, the generation config and the input-embedding table (to turn token ids into the
embeddings placed after a soft prompt). :func:`load_input_embeddings` reads only that table from
the checkpoint's safetensors (or ``.bin``) shards.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch

from izero.errors import GeneratorError

logger = logging.getLogger(__name__)

SAFETENSORS_INDEX = "model.safetensors.index.json"
SAFETENSORS_SINGLE = "model.safetensors"
BIN_INDEX = "pytorch_model.bin.index.json"
BIN_SINGLE = "pytorch_model.bin"


def resolve_model_dir(model: str, *, allow_download: bool = False) -> Path:
    """The local folder of ``model`` (a folder, or a Hugging Face id in the local cache).

    With ``allow_download`` the id's files are fetched from the Hub when missing.
    """
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=not allow_download))
    except Exception as exc:  # the hub raises several unrelated types for "not there"
        hint = (
            "it is not a folder nor in the local Hugging Face cache, and downloads are off; "
            "pre-fetch it, give a local folder, or set allow_download"
            if not allow_download
            else "check the id"
        )
        raise GeneratorError(f"could not find model {model!r}: {hint} ({exc})") from exc


def input_embedding_names(config: Any) -> tuple[str, ...]:
    """Checkpoint names the input-embedding weight of a model with ``config`` may have.

    The model is built on the ``meta`` device (no memory, no weights) to find the parameter
    behind ``get_input_embeddings()``; checkpoints store it with or without the base-model
    prefix (``model.embed_tokens.weight`` / ``transformer.wte.weight`` / ``wte.weight``).
    """
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    weight = model.get_input_embeddings().weight
    name = next(n for n, p in model.named_parameters() if p is weight)
    prefix = getattr(model, "base_model_prefix", "") + "."
    names = [name]
    if prefix != "." and name.startswith(prefix):
        names.append(name[len(prefix) :])
    return tuple(names)


def load_input_embeddings(directory: str | Path, *, dtype: torch.dtype) -> torch.Tensor:
    """The input-embedding table (``vocab x hidden``, ``dtype``, CPU) of a checkpoint folder."""
    from transformers import AutoConfig

    folder = Path(directory)
    names = input_embedding_names(AutoConfig.from_pretrained(folder))
    for index_name, single, reader in (
        (SAFETENSORS_INDEX, SAFETENSORS_SINGLE, _read_safetensors),
        (BIN_INDEX, BIN_SINGLE, _read_bin),
    ):
        index = folder / index_name
        if index.is_file():
            weight_map = json.loads(index.read_text())["weight_map"]
            files = [folder / weight_map[name] for name in names if name in weight_map]
        else:
            files = [folder / single] if (folder / single).is_file() else []
        for file in files:
            tensor = reader(file, names)
            if tensor is not None:
                logger.debug("read the input embeddings %s from %s", tuple(tensor.shape), file)
                return tensor.to(dtype)
    raise GeneratorError(
        f"no input-embedding weight ({' or '.join(names)}) in the checkpoint at {folder}; "
        "expected safetensors or pytorch_model.bin files from save_pretrained"
    )


def _read_safetensors(path: Path, names: tuple[str, ...]) -> torch.Tensor | None:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
        for name in names:
            if name in keys:
                return f.get_tensor(name)
    return None


def _read_bin(path: Path, names: tuple[str, ...]) -> torch.Tensor | None:
    state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    for name in names:
        if name in state:
            return state[name].clone()
    return None
