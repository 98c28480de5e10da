"""Shared tiny generators and demonstrations for the generator tests."""

from __future__ import annotations

import pytest

from izero.generator import InstructionGenerator
from izero.hf import TINY_ARCHS

DEMOS_A = (("cat", "cats"), ("dog", "dogs"), ("house", "houses"))
DEMOS_B = (("12 7", "19"),)
DEMOS_C = (
    ("The quick brown fox jumps over the lazy dog.", "dog fox jumps lazy over quick the"),
    ("one two three", "one three two"),
    ("zebra apple mango", "apple mango zebra"),
    ("sort these words please", "please sort these words"),
)
Z_DIM = 10


def z_point(k: int) -> tuple[float, ...]:
    """A deterministic soft prompt in [-1, 1]^10."""
    return tuple(((k * 7 + j * 3) % 11) / 5.5 - 1.0 for j in range(Z_DIM))


@pytest.fixture(scope="session", params=TINY_ARCHS)
def tiny_generator(request: pytest.FixtureRequest) -> InstructionGenerator:
    """A greedy generator on a tiny random model of each architecture (no eos: full length)."""
    return InstructionGenerator(
        model=f"tiny:{request.param}", device="cpu", max_new_tokens=12, eos_token_id=None
    )


@pytest.fixture(scope="session")
def llama_generator() -> InstructionGenerator:
    return InstructionGenerator(model="tiny:llama", device="cpu", max_new_tokens=12)
