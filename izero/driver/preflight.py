"""Preflight: what a sweep needs that can be checked before Ray starts or anything is written.

:func:`preflight` reads every task file (and makes every run's splits), checks that the output
path can be written, that the API key is there and that the endpoint answers a cheap request
with it (:mod:`izero.blackbox.preflight`; ``blackbox.preflight: false`` skips the request). A
failure is one line naming what is wrong and the fix; since nothing has been written yet, the
corrected command runs as if the first had never been tried.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pyarrow as pa

from izero.config import SweepConfig
from izero.driver.loop import PlannedRun
from izero.driver.plan import plan_method, plan_runs
from izero.errors import ConfigError, ResultsError
from izero.results import ResultsStore
from izero.tasks import Task, make_splits

logger = logging.getLogger(__name__)

#: Prefix of the folder made (and removed at once) to prove the output path is writable.
PROBE_PREFIX = ".izero-preflight-"


@dataclass(frozen=True)
class Prepared:
    """What preflight read: the config with its task files pinned to the digests read, the
    tasks by name, and every run with its splits and its method (built, so its settings were
    checked against the budget)."""

    config: SweepConfig
    tasks: dict[str, Task]
    planned: list[PlannedRun]


def preflight(config: SweepConfig, store: ResultsStore) -> Prepared:
    """Check everything checkable before a write; return the tasks and runs it read.

    Raises:
        TaskDataError: a task file is missing, unreadable or malformed.
        ConfigError: the output path cannot be written.
        BlackBoxError: no key, a rejected key, or an endpoint that does not answer.
    """
    prepared = prepare_runs(config)
    check_output(store, config.output_path)
    check_blackbox(config)
    return prepared


def prepare_runs(config: SweepConfig) -> Prepared:
    """Load every task (task files read and checked) and plan every run: its splits and its
    method. Errors are ``TaskDataError`` / ``ConfigError`` lines."""
    from izero.config.tasks import pin_task_digests
    from izero.tasks.selection import file_digests, load_tasks

    b = config.budget
    tasks = load_tasks(
        config.tasks,
        data_dir=config.data_dir,
        n_demos=b.n_demos,
        n_dev=b.n_dev,
        n_test=b.n_test,
        word_in_context_answers=config.data.word_in_context_answers,
    )
    config = replace(config, tasks=pin_task_digests(config.tasks, file_digests(tasks)))
    planned = []
    for key in plan_runs(config.task_names, config.methods, config.seeds):
        splits = make_splits(
            tasks[key.task],
            seed=key.seed,
            n_demos=b.n_demos,
            n_dev=b.n_dev,
            n_test=b.n_test,
            dev_sampling=config.data.dev_sampling,
        )
        metric = config.metric_overrides.get(key.task, splits.metric)
        splits = splits if splits.metric == metric else replace(splits, metric=metric)
        planned.append(PlannedRun(key, splits, plan_method(config, key, splits, tasks)))
    return Prepared(config, tasks, planned)


def check_output(store: ResultsStore, shown: str) -> None:
    """The results can be written at ``store``'s root (``shown``: the path as configured).

    A local path: a folder is created (and removed at once) in the deepest folder that
    exists on the way to it. An object store: the root can be listed (credentials, bucket).
    """
    root = store.local_root
    if root is None:
        try:
            store.fs.get_file_info(store.root)
        except (OSError, pa.ArrowException) as err:
            raise ResultsError(
                f"cannot reach the results at {shown}: {_first_line(err)}. Fix: check the URI "
                "and the credentials for it, or set output.path to a local folder"
            ) from None
        return
    folder = _deepest_existing(root)
    if folder is None or not folder.is_dir():
        raise _unwritable(shown, f"{folder} is not a folder")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=PROBE_PREFIX, dir=folder))
    except OSError as err:
        raise _unwritable(shown, f"creating a folder in {folder} failed: {err}") from None


def _deepest_existing(path: Path) -> Path | None:
    path = path.absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return None


def _unwritable(shown: str, why: str) -> ConfigError:
    return ConfigError(
        "output.path",
        shown,
        f"a folder izero can create and write ({why})",
        "choose a folder you can write, e.g. --set output.path=runs/{name}",
    )


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def check_blackbox(config: SweepConfig) -> Any | None:
    """Key and endpoint of an ``openai`` black box (others have nothing to check here).

    Returns the :class:`~izero.blackbox.preflight.EndpointCheck` (``None`` when skipped).
    """
    bb = config.blackbox
    if bb.backend != "openai":
        return None
    from izero.blackbox.preflight import check_endpoint
    from izero.driver.stages import endpoint_config

    endpoint = endpoint_config(config)
    has_key = bool(os.environ.get(bb.api_key_env))
    if not bb.preflight:
        if not has_key:
            logger.warning(
                "no API key: the environment variable %s is not set; requests to %s go "
                "without one (blackbox.preflight is off, so this was not checked)",
                bb.api_key_env,
                endpoint.endpoint,
            )
        return None
    result = asyncio.run(check_endpoint(endpoint))
    if not has_key:
        logger.info(
            "%s answers without an API key (%s is not set)", endpoint.endpoint, bb.api_key_env
        )
    logger.info("preflight: %s answered %s %d", endpoint.endpoint, result.request, result.status)
    return result
