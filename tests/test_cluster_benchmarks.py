"""The token-bound cases of the scoring benchmark run end to end at a tiny size (figures come
from full runs, recorded in benchmarks/RESULTS.md)."""

from __future__ import annotations

import pytest

from tests.test_benchmarks import _run

pytestmark = pytest.mark.slow


def test_scoring_throughput_token_bound_cases(data_dir):
    out = _run(
        "scoring_throughput.py",
        "--rpms", "",
        "--tpms", "30000",
        "--tpm-seconds", "3",
        "--tpm-window", "2",
        "--latency", "0.02",
        "--min-requests", "40",
        "--data-dir", str(data_dir),
    )  # fmt: skip
    assert set(out) >= {"share_of_tpm", "share_429_tpm", "lost"}
    assert out["tpm_cases"] == 2 and out["cases"] == 0  # with and without x-ratelimit headers
    assert out["lost"] == 0 and out["lost_tpm"] == 0
    assert 0 < out["share_of_tpm"] <= 1.05 and 0 <= out["share_429_tpm"] <= 1
