"""``benchmarks/generator_throughput.py --engine vllm`` runs both engines at a tiny size and
reports ``vllm_matches_hf`` last (figures themselves come from full runs, not from here)."""

from __future__ import annotations

import pytest

from tests.test_benchmarks import _run

pytestmark = pytest.mark.slow


def test_generator_throughput_engines_side_by_side() -> None:
    out = _run(
        "generator_throughput.py",
        "--engine", "vllm",
        "--engine-requests", "12",
        "--new-tokens", "6",
        "--repeats", "1",
        timeout=900,
    )  # fmt: skip
    assert out["mode"] == "engines" and out["dtype"] == "float32"
    assert out["hf_instructions_per_s"] > 0 and out["vllm_instructions_per_s"] > 0
    assert out["vllm_matches_hf"] == 1.0 and out["vllm_token_matches_hf"] == 1.0
