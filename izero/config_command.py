"""``izero validate``: load and validate a sweep config, print it resolved."""

from __future__ import annotations

import argparse

import yaml

from izero.config import config_to_dict, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments shared by commands that read a sweep config (``--config``, ``--set``,
    ``--data-dir``)."""
    parser.add_argument(
        "--config", default=None, metavar="FILE", help="sweep config YAML (default: defaults)"
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set budget.q=10 (repeatable)",
    )
    parser.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="instruction-induction data folder (same as --set data_dir=DIR)",
    )


def overrides_from_args(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides, with ``--data-dir`` folded in."""
    overrides = list(args.overrides)
    if args.data_dir is not None:
        overrides.append(f"data_dir={args.data_dir}")
    return overrides


def run(args: argparse.Namespace) -> int:
    """Validate the config and read its task files; print it as YAML and a one-line summary;
    return 0."""
    from izero.tasks.selection import load_tasks

    cfg = load_config(args.config, overrides=overrides_from_args(args))
    b = cfg.budget
    # task files are read and checked (columns, rows, sizes) as a sweep would, before it starts
    load_tasks(cfg.tasks, data_dir=cfg.data_dir, n_demos=b.n_demos, n_dev=b.n_dev, n_test=b.n_test)
    print(yaml.safe_dump(config_to_dict(cfg), sort_keys=False).rstrip())
    print(
        f"# OK: {len(cfg.tasks)} tasks x {len(cfg.methods)} methods x {len(cfg.seeds)} seeds "
        f"= {cfg.n_runs} runs; {b.n_evaluations} instructions per run "
        f"({b.n_init} initial + {b.n_rounds} rounds x {b.q}), {b.n_dev} dev / {b.n_test} test "
        f"examples; output {cfg.output_path}"
    )
    return 0
