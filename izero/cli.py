"""The ``izero`` command.

Subcommands live in a registry, :data:`COMMANDS`: each names a module that provides
``add_arguments(parser: argparse.ArgumentParser) -> None`` and ``run(args) -> int``. Only the
module of the chosen subcommand is imported, so ``izero tasks`` works even where an optional
stage (say the black-box client) cannot be imported. To add a subcommand (``sweep``,
``report``), add a :class:`Command` to :data:`COMMANDS`.

Errors that izero raises on purpose (:class:`izero.errors.IZeroError`) print one line
``izero: error: ...`` to stderr and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from izero import __version__
from izero.errors import IZeroError

PROG = "izero"
#: Exit status of a usage or configuration error (as argparse uses).
EXIT_USAGE = 2
#: Exit status after Ctrl-C.
EXIT_INTERRUPTED = 130
DEFAULT_LOG_LEVEL = "WARNING"


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, and the module with add_arguments/run."""

    name: str
    module: str
    help: str


#: Every subcommand, by name.
COMMANDS: dict[str, Command] = {
    c.name: c
    for c in (
        Command("tasks", "izero.tasks.command", "list the available tasks"),
        Command("validate", "izero.config_command", "validate a sweep config and print it"),
        Command("score", "izero.blackbox.command", "score instructions with the black box"),
        Command("sweep", "izero.driver.command", "run a sweep (optimise instructions)"),
        Command("report", "izero.results.command", "write the report of a sweep's results"),
        Command("best", "izero.results.best_command", "print the best instruction per task"),
    )
}


#: Options of the main parser that take a value (skipped when looking for the subcommand).
_VALUE_OPTIONS = frozenset({"--log-level"})


def _chosen(argv: Sequence[str]) -> str | None:
    """The subcommand named in ``argv``, if any."""
    tokens = iter(argv)
    for token in tokens:
        if token == "--":
            return None
        if token in _VALUE_OPTIONS:
            next(tokens, None)
        elif not token.startswith("-"):
            return token
    return None


def _load(command: Command):
    try:
        return importlib.import_module(command.module)
    except ModuleNotFoundError as exc:
        raise IZeroError(
            f"command '{command.name}' is not available: {command.module} cannot be imported "
            f"({exc}). Fix: install the complete izero package"
        ) from exc


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; only the subcommand named in ``argv`` gets its arguments."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Ray-parallel batch InstructZero: find the best instruction for a "
        "black-box LLM.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--log-level",
        default=DEFAULT_LOG_LEVEL,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="logging level (default: %(default)s)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _chosen(argv)
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        p.set_defaults(_command=command.name)
        if command.name == chosen:
            _load(command).add_arguments(p)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``izero`` command with ``argv`` (default: ``sys.argv[1:]``); return the status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        parser = build_parser(args_list)
        try:
            args = parser.parse_args(args_list)
        except SystemExit as exc:  # --help, --version, usage errors
            return exc.code if isinstance(exc.code, int) else EXIT_USAGE
        logging.basicConfig(
            level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )
        return int(_load(COMMANDS[args._command]).run(args))
    except IZeroError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
