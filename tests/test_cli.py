"""The ``izero`` command, in-process and as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from izero import cli
from izero.tasks import BUILTIN_TASKS

REPO = Path(__file__).resolve().parents[1]


def test_tasks_lists_builtin_tasks(capsys) -> None:
    assert cli.main(["tasks"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["task", "source", "metric", "induce", "execute", "annotations"]
    rows = {line.split()[0]: line.split() for line in out[1:-1]}
    assert set(rows) == set(BUILTIN_TASKS)
    assert rows["sum"] == ["sum", "builtin", "exact_match", "100", "100", "4"]
    assert out[-1] == f"{len(BUILTIN_TASKS)} tasks"


def test_tasks_with_data_dir(capsys, data_dir: Path) -> None:
    assert cli.main(["--log-level", "ERROR", "tasks", "--data-dir", str(data_dir)]) == 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[1:-1]}
    assert len(rows) == 33
    assert rows["cs_algorithms"] == ["cs_algorithms", "file", "exact_match", "157", "0", "0"]
    assert rows["synonyms"][2] == "contains" and rows["sum"][1] == "file"


def test_validate_prints_resolved_config(capsys) -> None:
    config = REPO / "jobs" / "configs" / "offline_demo.yaml"
    code = cli.main(
        ["validate", "--config", str(config), "--set", "budget.q=3", "--set", "seeds=7"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "  q: 3\n" in out and "seeds:\n- 7\n" in out and "preset: demo" in out
    assert out.rstrip().splitlines()[-1].startswith("# OK: 6 tasks x 7 methods x 1 seeds = 42 runs")


def test_validate_data_dir_flag(capsys, data_dir: Path) -> None:
    code = cli.main(["validate", "--set", "tasks=cs_algorithms", "--data-dir", str(data_dir)])
    assert code == 0
    assert f"data_dir: {data_dir}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["validate", "--set", "budget.q=-1"], "config field 'budget.q': got -1"),
        (["validate", "--set", "tasks=summ"], "did you mean 'sum'?"),
        (["validate", "--set", "blackbox.backend=openai"], "config field 'blackbox.model'"),
        (["validate", "--set", "metric_overrides.sum=bleu"], "got 'bleu'"),
        (["validate", "--data-dir", "/nonexistent/dir"], "config field 'data_dir'"),
        (["validate", "--config", "/nonexistent.yaml"], "config field 'config file'"),
        (["tasks", "--data-dir", "/nonexistent/dir"], "does not exist"),
    ],
)
def test_errors_are_one_line_exit_2(capsys, argv: list[str], message: str) -> None:
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("izero: error: ") and message in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


def test_usage_errors_and_help(capsys) -> None:
    assert cli.main([]) == 2
    assert "required: COMMAND" in capsys.readouterr().err
    assert cli.main(["nope"]) == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
    assert cli.main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in cli.COMMANDS)
    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("izero ")


def test_lazy_subcommand_missing_module(capsys, monkeypatch) -> None:
    monkeypatch.setitem(
        cli.COMMANDS, "ghost", cli.Command("ghost", "izero.no_such_module", "not built yet")
    )
    assert cli.main(["tasks"]) == 0  # other commands never import it
    capsys.readouterr()
    assert cli.main(["ghost"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("izero: error: command 'ghost' is not available")


def test_registry_runs_a_registered_module(capsys, monkeypatch, tmp_path: Path) -> None:
    (tmp_path / "izero_test_cmd.py").write_text(
        "def add_arguments(parser):\n"
        "    parser.add_argument('--n', type=int, default=1)\n"
        "def run(args):\n"
        "    print('ran', args.n)\n"
        "    return 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(cli.COMMANDS, "echo", cli.Command("echo", "izero_test_cmd", "test"))
    assert cli.main(["--log-level", "INFO", "echo", "--n", "5"]) == 3
    assert capsys.readouterr().out == "ran 5\n"


def test_python_m_izero_subprocess(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    ok = subprocess.run(
        [sys.executable, "-m", "izero", "tasks"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    assert "word_sorting" in ok.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "izero", "validate", "--set", "budget.n_init=0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        "izero: error: config field 'budget.n_init': got 0; expected a positive integer. "
        "Fix: set budget.n_init to a positive integer"
    )
