"""Fixtures shared by the whole suite: the task data directory and a real local Ray."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "instruction_induction"


def pytest_configure(config: pytest.Config) -> None:
    # Small GP factorisations are 100x slower with 2 threads on 2 cores (../shared/FACTS.md).
    import torch

    torch.set_num_threads(1)
    # Ray workers must import the package from this checkout.
    paths = [str(REPO_ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The instruction-induction data (``../shared/data/instruction_induction``)."""
    path = Path(os.environ.get("IZERO_TEST_DATA_DIR", DEFAULT_DATA_DIR))
    if not (path / "induce").is_dir():
        pytest.fail(f"task data not found at {path}; set IZERO_TEST_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def ray_local():
    """A real local Ray cluster with a fixed CPU count, its files in a private temp dir."""
    import ray

    temp_dir = tempfile.mkdtemp(prefix="izr", dir="/tmp")
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        _temp_dir=temp_dir,
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
