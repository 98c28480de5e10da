"""CI runs exactly the README's two set-up commands."""

from __future__ import annotations

import re

from .conftest import REPO_ROOT


def _readme_setup_commands() -> list[str]:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Set-up on a fresh machine", 1)[1]
    block = re.search(r"```bash\n(.*?)```", section, re.DOTALL)
    assert block, "README's set-up section has no bash block"
    return [line.strip() for line in block.group(1).splitlines() if line.strip()]


def _ci_commands() -> list[str]:
    lines = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    skip = ("#", "set ", "cd ", "export ")
    return [line.strip() for line in lines if line.strip() and not line.startswith(skip)]


def test_ci_runs_the_readme_setup_commands():
    readme = _readme_setup_commands()
    assert len(readme) == 2
    assert _ci_commands() == readme


def test_the_install_command_installs_vllm_and_removes_what_breaks_transformers():
    install = _readme_setup_commands()[0]
    assert install.startswith("pip install torch==")  # CPU torch before anything asks for torch
    assert '".[dev,vllm]"' in install
    assert install.endswith("pip uninstall -y torchvision torchaudio torchcodec")
