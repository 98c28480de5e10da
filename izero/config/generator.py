"""The ``generator`` section: the open-source LLM that turns soft prompts into instructions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from izero.config._checks import DEVICE_RE, check, int_at_least, is_number

#: A tiny random-weight Llama built offline (``izero.hf.tiny``); any HF id or local path works.
DEFAULT_GENERATOR_MODEL = "tiny:llama"
DEFAULT_DTYPE = "auto"
DEFAULT_DEVICE = "auto"
DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_N_PROMPT_TOKENS = 5
DEFAULT_INTRINSIC_DIM = 10
DEFAULT_PROJECTION_INIT = "uniform"
DEFAULT_PROJECTION_SCALE = 1.0
DEFAULT_GENERATOR_BATCH_SIZE = 64


@dataclass(frozen=True)
class GeneratorConfig:
    """The open-source LLM that turns soft prompts into instructions.

    ``model``: any Hugging Face id or local path, or ``tiny:<arch>`` for a tiny random model.
    ``n_prompt_tokens`` soft tokens are projected from an ``intrinsic_dim``-dimensional ``z`` by
    a fixed random matrix initialised ``projection_init`` (``uniform``: U(-s, s); ``normal``:
    N(0, s^2); s = ``projection_scale``). ``num_actors``: generator actors (None: one per GPU,
    or 1 on CPU).
    """

    _SECTION: ClassVar[str] = "generator."

    model: str = DEFAULT_GENERATOR_MODEL
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = DEFAULT_DTYPE
    device: str = DEFAULT_DEVICE
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    n_prompt_tokens: int = DEFAULT_N_PROMPT_TOKENS
    intrinsic_dim: int = DEFAULT_INTRINSIC_DIM
    projection_init: Literal["uniform", "normal"] = DEFAULT_PROJECTION_INIT
    projection_scale: float = DEFAULT_PROJECTION_SCALE
    num_actors: int | None = None
    batch_size: int = DEFAULT_GENERATOR_BATCH_SIZE

    def __post_init__(self) -> None:
        s = self._SECTION
        check(
            bool(self.model.strip()),
            f"{s}model",
            self.model,
            "a Hugging Face model id, a local path or tiny:<arch>",
        )
        check(
            bool(DEVICE_RE.match(self.device)),
            f"{s}device",
            self.device,
            "auto, cpu, mps, cuda or cuda:<index>",
        )
        for name in ("max_new_tokens", "n_prompt_tokens", "intrinsic_dim", "batch_size"):
            int_at_least(s, name, getattr(self, name), 1)
        check(
            is_number(self.projection_scale) and self.projection_scale > 0,
            f"{s}projection_scale",
            self.projection_scale,
            "a positive number",
        )
        if self.num_actors is not None:
            int_at_least(s, "num_actors", self.num_actors, 1)
