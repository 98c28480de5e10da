"""``izero sweep``'s resume command: the exact command that continues a stopped sweep."""

from __future__ import annotations

import argparse

import pytest

from izero.driver import command


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize(
    ("argv0", "prefix"),
    [
        ("/usr/local/bin/izero", "izero sweep"),
        ("/work/izero/izero/__main__.py", "python -m izero sweep"),
        ("jobs/sweep.py", "python jobs/sweep.py"),
    ],
)
def test_the_resume_command_repeats_the_config_and_overrides(argv0, prefix):
    args = _args(
        "--config", "my sweep.yaml",
        "--set", "budget.q=5",
        "--overwrite",
        "--set", "output.overwrite=true",
        "--data-dir", "/data",
        "--no-report",
    )  # fmt: skip
    assert command.resume_command(args, argv0) == (
        f"{prefix} --config 'my sweep.yaml' --set budget.q=5 --data-dir /data --no-report --resume"
    )
    # a resumed sweep resumed again: --resume once
    assert command.resume_command(_args("--resume"), argv0) == f"{prefix} --resume"
