"""The fixed random projection ``A`` from a soft prompt ``z`` to prompt-token embeddings.

InstructZero optimises ``z`` in ``[-1, 1]^d`` (``d`` = intrinsic dimension, about 10) and feeds
the open-source LLM ``n_prompt_tokens`` embeddings ``A z`` (reshaped to
``n_prompt_tokens x hidden_size``) in front of the demonstrations. ``A`` is drawn once from a
seeded generator on the CPU in float32, so it is the same on every machine and device.

Initialisations (``init``):

- ``"uniform"`` (the paper): ``A_ij ~ U(-scale, scale)``. With ``z ~ U[-1, 1]^d`` each embedding
  coordinate then has standard deviation ``scale * sqrt(d) / 3`` (about 1.05 for ``d = 10``), far
  larger than a real embedding table's (~0.02 for Llama-2): the soft prompt dominates the prompt,
  which is how the paper runs it.
- ``"normal"``: ``A_ij ~ N(0, sigma^2)`` with ``sigma = scale * embedding_std / sqrt(d)``, the
  scale the original InstructZero code computes (``alpha * std_hat / (sqrt(d) * sigma)`` from
  Black-Box Tuning; ``scale`` plays ``alpha / sigma``). For ``z`` with unit-variance coordinates
  each embedding coordinate has the standard deviation of the embedding table; for uniform ``z`` it
  is ``1/sqrt(3)`` of it. ``embedding_std`` is required for this option.

``match_embedding_std=True`` rescales ``A`` (after either init) so that, for ``z`` uniform on the
cube, each coordinate of ``A z`` has exactly the embedding table's standard deviation. Use it when
the paper's scale drowns the demonstrations in a model whose embeddings are small (the soft prompt
then steers rather than replaces the prompt); it is off by default to match the paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from izero.errors import ConfigError, GeneratorError

PROJECTION_INITS: tuple[str, ...] = ("uniform", "normal")
DEFAULT_INTRINSIC_DIM = 10
DEFAULT_N_PROMPT_TOKENS = 5
Z_BOUND = 1.0
"""Soft prompts live in ``[-Z_BOUND, Z_BOUND]^d``."""

_UNIFORM_Z_STD = Z_BOUND / math.sqrt(3.0)


@dataclass(frozen=True)
class ProjectionConfig:
    """Options of the random projection, validated on construction.

    Attributes:
        seed: seed of ``A`` (the same seed gives the same ``A`` everywhere).
        intrinsic_dim: ``d``, the length of a soft prompt ``z``.
        n_prompt_tokens: number of soft tokens placed before the prompt.
        hidden_size: embedding width of the model.
        init: ``"uniform"`` or ``"normal"`` (see module docstring).
        scale: multiplier of the init (``U(-scale, scale)``, or ``alpha / sigma`` for normal).
        embedding_std: standard deviation of the model's input-embedding table, needed by
            ``init="normal"`` and ``match_embedding_std``.
        match_embedding_std: rescale so ``A z`` has the embedding table's standard deviation.
    """

    seed: int = 0
    intrinsic_dim: int = DEFAULT_INTRINSIC_DIM
    n_prompt_tokens: int = DEFAULT_N_PROMPT_TOKENS
    hidden_size: int = 64
    init: str = "uniform"
    scale: float = 1.0
    embedding_std: float | None = None
    match_embedding_std: bool = False

    def __post_init__(self) -> None:
        for name in ("intrinsic_dim", "n_prompt_tokens", "hidden_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"generator.{name}", value, "a positive integer")
        if self.init not in PROJECTION_INITS:
            raise ConfigError("generator.projection_init", self.init, f"one of {PROJECTION_INITS}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError("generator.projection_scale", self.scale, "a finite number > 0")
        needs_std = self.init == "normal" or self.match_embedding_std
        std = self.embedding_std
        if needs_std and (std is None or not math.isfinite(std) or std <= 0):
            raise ConfigError(
                "generator.embedding_std",
                std,
                "a finite number > 0 (required by init='normal' and match_embedding_std)",
                "pass embedding_std=model.get_input_embeddings().weight.std()",
            )


class RandomProjection:
    """``z`` (``n x d``, in ``[-1, 1]``) -> soft-prompt embeddings (``n x n_tokens x hidden``).

    ``A`` is a float32 CPU tensor of shape ``(n_prompt_tokens * hidden_size) x d``; ``project``
    computes in float32 on CPU (bit-identical everywhere) and then casts to the requested dtype
    and device.
    """

    def __init__(self, config: ProjectionConfig) -> None:
        self.config = config
        self.matrix = make_projection_matrix(config)

    def project(
        self,
        z: torch.Tensor | Sequence[Sequence[float]],
        *,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> torch.Tensor:
        """Embeddings ``n x n_prompt_tokens x hidden_size`` for soft prompts ``z`` (``n x d``)."""
        cfg = self.config
        zt = torch.as_tensor(z, dtype=torch.float32, device="cpu")
        if zt.ndim == 1:
            zt = zt.unsqueeze(0)
        if zt.ndim != 2 or zt.shape[1] != cfg.intrinsic_dim:
            raise GeneratorError(
                f"soft prompts must be n x {cfg.intrinsic_dim}; got shape {tuple(zt.shape)}. "
                f"Fix: give z with intrinsic_dim={cfg.intrinsic_dim} numbers per prompt."
            )
        if not torch.isfinite(zt).all():
            raise GeneratorError("soft prompt z contains NaN or inf; expected finite numbers")
        if (zt.abs() > Z_BOUND + 1e-6).any():
            raise GeneratorError(
                f"soft prompt z outside [-{Z_BOUND}, {Z_BOUND}]: max |z| = {zt.abs().max():.4g}. "
                "Fix: clip or rescale the proposals to the unit cube."
            )
        emb = zt @ self.matrix.T
        return emb.reshape(-1, cfg.n_prompt_tokens, cfg.hidden_size).to(device=device, dtype=dtype)


def make_projection_matrix(config: ProjectionConfig) -> torch.Tensor:
    """The matrix ``A`` (``(n_prompt_tokens * hidden_size) x d``, float32, CPU) of ``config``."""
    d = config.intrinsic_dim
    rows = config.n_prompt_tokens * config.hidden_size
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    if config.init == "uniform":
        matrix = (torch.rand(rows, d, generator=gen, dtype=torch.float64) * 2 - 1) * config.scale
        entry_std = config.scale / math.sqrt(3.0)
    else:
        assert config.embedding_std is not None  # validated
        entry_std = config.scale * config.embedding_std / math.sqrt(d)
        matrix = torch.randn(rows, d, generator=gen, dtype=torch.float64) * entry_std
    if config.match_embedding_std:
        assert config.embedding_std is not None  # validated
        out_std = entry_std * math.sqrt(d) * _UNIFORM_Z_STD  # std of (A z)_i, z uniform
        matrix = matrix * (config.embedding_std / out_std)
    return matrix.to(torch.float32)
