"""``benchmarks/paper_search.py`` still runs at a tiny size and ends with its JSON figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def test_paper_search_benchmark_tiny():
    script = ROOT / "benchmarks" / "paper_search.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--dims", "2", "--tasks", "1"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) >= 3, proc.stdout
    out = json.loads(lines[-1])
    assert set(out) == {"ei_ratio", "zero_ei_share", "winner_distance", "seconds"}
    assert set(out["ei_ratio"]) == {"paper", "paper_logei", "peak_scale"}
    # in d = 2 the paper's settings find EI's maximum
    assert out["ei_ratio"]["paper"]["2"] >= 0.9
    assert out["seconds"]["paper"]["2"] > 0
