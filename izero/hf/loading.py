"""Load a causal LM and its tokenizer by Hugging Face id, local path or ``tiny:<arch>`` id.

``tiny:llama`` / ``tiny:qwen2`` / ``tiny:gpt2`` (optionally ``tiny:llama?hidden_size=128&
num_layers=2&seed=1``) build random-weight models in-process (:mod:`izero.hf.tiny`). Anything
else is a Hugging Face model id or a local directory, read with ``local_files_only=True`` unless
the caller passes ``allow_download=True``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from izero.errors import GeneratorError

logger = logging.getLogger(__name__)

TINY_PREFIX = "tiny:"
AUTO = "auto"
DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}
"""Accepted dtype names (``"auto"`` = bf16 on CUDA, fp32 elsewhere)."""


def resolve_device(device: str | torch.device = AUTO) -> torch.device:
    """``"auto"`` -> ``cuda`` when available, else ``cpu``; anything else as given."""
    if isinstance(device, torch.device):
        return device
    if device == AUTO:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise GeneratorError(
            f"bad device {device!r}; expected 'auto', 'cpu', 'cuda' or 'cuda:N'"
        ) from exc


def resolve_dtype(dtype: str | torch.dtype = AUTO, *, device: torch.device) -> torch.dtype:
    """``"auto"`` -> bf16 on CUDA, fp32 on CPU (bf16 matmuls are slow on most CPUs)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == AUTO:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype not in DTYPES:
        raise GeneratorError(
            f"bad dtype {dtype!r}; expected 'auto' or one of {', '.join(sorted(DTYPES))}"
        )
    return DTYPES[dtype]


def load_causal_lm(
    model_id_or_path: str,
    *,
    dtype: str | torch.dtype = AUTO,
    device: str | torch.device = AUTO,
    allow_download: bool = False,
) -> tuple[Any, Any]:
    """Load ``(model, tokenizer)`` ready for batched generation.

    The model is in eval mode on ``device`` with ``dtype``; the tokenizer pads on the left and has
    a pad token (the eos token when the checkpoint defines none).

    Args:
        model_id_or_path: ``tiny:<arch>[?k=v&...]``, a Hugging Face id, or a local directory.
        dtype: ``"auto"`` (bf16 on CUDA, fp32 on CPU), a name from :data:`DTYPES`, or a dtype.
        device: ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda:N"``...
        allow_download: let transformers fetch files from the Hub; off by default so nothing is
            ever downloaded by accident (tests and the project's machines are offline).
    """
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, device=dev)
    if model_id_or_path.startswith(TINY_PREFIX):
        from izero.hf.tiny import build_tiny

        model, tokenizer = build_tiny(model_id_or_path)
    else:
        model, tokenizer = _load_pretrained(model_id_or_path, dt, allow_download)
    model = model.to(device=dev, dtype=dt)
    model.eval()
    prepare_tokenizer(tokenizer)
    logger.info("loaded %s on %s as %s", model_id_or_path, dev, dt)
    return model, tokenizer


def prepare_tokenizer(tokenizer: Any) -> Any:
    """Left padding and a pad token (falls back to eos), in place; returns the tokenizer."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token is None:
            raise GeneratorError(
                "the tokenizer has neither a pad nor an eos token; batched generation needs one. "
                "Fix: set tokenizer.pad_token before use or choose another checkpoint."
            )
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _load_pretrained(name: str, dtype: torch.dtype, allow_download: bool) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    local_only = not allow_download
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(name, dtype=dtype, local_files_only=local_only)
    except (OSError, ValueError) as exc:
        hint = (
            "it is not in the local Hugging Face cache and downloads are off; pass "
            "allow_download=True, pre-fetch it, or give a local directory"
            if local_only
            else "check the id or path"
        )
        raise GeneratorError(f"could not load model {name!r}: {hint} ({exc})") from exc
    return model, tokenizer
