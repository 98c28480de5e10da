"""Run a whole sweep: load tasks, start the stages, run every run, write results and report."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from izero.config import DataConfig, PromptsConfig, SweepConfig, config_to_dict
from izero.driver.cache_backup import BACKUP_INTERVAL_S, CacheBackup
from izero.driver.interrupt import SweepInterrupted, cancel_on_signals, stop_signals
from izero.driver.loop import RunOutcome, SweepLoop
from izero.driver.progress import Progress
from izero.driver.recorder import Recorder
from izero.errors import ConfigError, IZeroError
from izero.results import ResultsStore

logger = logging.getLogger(__name__)

#: Seconds between two progress reports.
PROGRESS_INTERVAL_S = 5.0
#: Folder (under a local results path) of the black-box response cache.
CACHE_DIR_NAME = "cache"


@dataclass
class SweepOutcome:
    """What a finished sweep returns: where its results are and each run's outcome."""

    uri: str
    outcomes: list[RunOutcome]
    progress: Progress


def _cache_dir(config: SweepConfig, store: ResultsStore) -> Path:
    """The response cache lives with the results when they are local, else on local disk.

    For object-store results (s3://, gs://) the cache is kept in a local folder named after the
    sweep (``IZERO_CACHE_DIR`` or the temp dir), since SQLite needs a local file, and copied
    into the results as the sweep goes (:mod:`izero.driver.cache_backup`).
    """
    if store.local_root is not None:
        return store.local_root / CACHE_DIR_NAME
    base = Path(os.environ.get("IZERO_CACHE_DIR", Path(tempfile.gettempdir()) / "izero-cache"))
    return base / config.name


def _init_ray(num_cpus: int | None = None) -> None:
    with _keeping_sigterm_handler():
        _start_ray(num_cpus)


@contextlib.contextmanager
def _keeping_sigterm_handler():
    """``ray.init`` replaces the SIGTERM handler with one that exits at once; a handler the
    caller installed (``izero sweep``'s: stop as on Ctrl-C, caching requests in flight) stays."""
    mine = signal.getsignal(signal.SIGTERM) if _main_thread() else None
    try:
        yield
    finally:
        if callable(mine):
            signal.signal(signal.SIGTERM, mine)


def _start_ray(num_cpus: int | None = None) -> None:
    import ray

    if ray.is_initialized():
        return
    if os.environ.get("RAY_ADDRESS"):
        ray.init(log_to_driver=False)  # inside `ray job submit`, or a cluster given by the user
        return
    ray.init(
        num_cpus=num_cpus or max(4, os.cpu_count() or 1),
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}},
    )


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def run_sweep(
    config: SweepConfig,
    *,
    resume: bool = False,
    on_progress: Callable[[Progress], None] | None = None,
    backends_factory: Callable[..., Any] | None = None,
) -> SweepOutcome:
    """Run ``config``'s sweep to completion and return where its results are.

    Before Ray starts or anything is written, :func:`~izero.driver.preflight.preflight` reads
    the tasks and checks the output path, the key and the endpoint. A sweep that then stops
    before its first evaluation is recorded takes back what it wrote (provenance,
    checkpoints), so the corrected command is not refused as an unfinished sweep.

    SIGINT (Ctrl-C) and SIGTERM stop it cleanly: nothing new is sent, answers already on their
    way land in the response cache, and :class:`SweepInterrupted` is raised.

    Args:
        config: a validated sweep config.
        resume: continue the sweep already at ``config.output_path`` (nothing finished is
            redone, no paid call is repeated); without it an existing sweep there is refused
            unless ``config.output.overwrite``.
        on_progress: called every few seconds with the progress counters.
        backends_factory: builds the stages (default :class:`~izero.driver.backends.Backends`).
    """
    from izero.driver.preflight import preflight

    store = ResultsStore(config.output_path)
    with stop_signals() as stop:
        fresh = False  # this attempt started the sweep: it may take back what it wrote
        try:
            prepared = preflight(config, store)
            if resume:
                if not store.exists():
                    logger.warning("--resume: no sweep at %s yet; starting a new one", store.uri)
                elif store.is_finished():
                    logger.info("sweep at %s is already finished", store.uri)
            else:
                store.ensure_new_sweep(overwrite=config.output.overwrite)
            fresh = not store.exists()
            return _run_prepared(
                config, store, prepared, resume, on_progress, backends_factory, stop
            )
        except BaseException as err:
            if fresh and not _recorded(store):
                _take_back_start(store)
            if stop and isinstance(err, (KeyboardInterrupt, asyncio.CancelledError)):
                raise SweepInterrupted(stop[0], recorded=store.exists()) from None
            raise


def _run_prepared(
    config: SweepConfig,
    store: ResultsStore,
    prepared: Any,
    resume: bool,
    on_progress: Callable[[Progress], None] | None,
    backends_factory: Callable[..., Any] | None,
    stop: list[str],
) -> SweepOutcome:
    from izero.config.tasks import check_same_task_files
    from izero.methods import method_class
    from izero.results.provenance import collect_provenance
    from izero.tracking import start_tracking

    config = prepared.config  # task files pinned to the digests preflight read
    if resume:
        old = store.read_provenance()
        if old is not None:
            check_same_task_files(old.config.get("tasks"), config.tasks)
            _check_same_sweep(old.config, config_to_dict(config))
    if store.read_provenance() is None:
        store.write_provenance(
            collect_provenance(config=config_to_dict(config), seeds=config.seeds, sweep=config.name)
        )
    tasks, planned = prepared.tasks, prepared.planned
    _init_ray()
    factory = backends_factory
    if factory is None:
        from izero.driver.backends import Backends

        factory = Backends
    cache_dir = _cache_dir(config, store)
    backup = CacheBackup(store, cache_dir)
    backup.restore()
    backends = factory(config=config, tasks=tasks, cache_dir=cache_dir)
    tracker = None
    try:
        tracker = start_tracking(config, results_uri=store.uri)
        recorder = Recorder(
            store=store,
            sweep=config.name,
            generator_model=config.generator.model,
            blackbox_model=backends.blackbox_model,
            listeners=[tracker] if tracker is not None else (),
            proposer_model=getattr(backends, "proposer_model", None),
            proposer_methods=frozenset(m for m in config.methods if method_class(m).llm_proposer),
        )
        progress = Progress(
            total_runs=len(planned),
            expected_evaluations=sum(r.method.expected_evaluations() for r in planned),
        )
        for run in planned:
            run.method.services.bind(backends, recorder=recorder, progress=progress)
        found = recorder.load_existing()
        if found:
            logger.info("resuming: %d evaluations already recorded at %s", found, store.uri)
        loop = SweepLoop(backends=backends, recorder=recorder, progress=progress)
        outcomes = asyncio.run(
            _run_with_progress(loop, planned, progress, on_progress, backup, stop)
        )
        _compact(store)
        store.mark_finished()
    finally:
        backends.close()  # requests already sent land (and are cached) before the pool stops
        backup.close()
        if tracker is not None:
            tracker.close()
    return SweepOutcome(uri=store.uri, outcomes=outcomes, progress=progress)


def _recorded(store: ResultsStore) -> bool:
    """Whether any evaluation or paid call (e.g. a method's proposals) of the sweep is in its
    results: then the sweep has started for real, and its checkpoints say what was asked."""
    try:
        if store.read_evaluations(columns=["eval_index"]).num_rows > 0:
            return True
        calls = store.read_calls(columns=["cached"])
        return calls is not None and calls.num_rows > 0
    except (OSError, pa.ArrowException, IZeroError):
        return True  # unreadable: keep everything


def _take_back_start(store: ResultsStore) -> None:
    """Remove what a sweep writes before its first evaluation (provenance, checkpoints), so
    the corrected command is not refused; the response cache stays (it blocks nothing)."""
    from izero.results.store import CHECKPOINT_DIR, PROVENANCE_FILE

    removed = False
    for name, remove in (
        (CHECKPOINT_DIR, store.fs.delete_dir),
        (PROVENANCE_FILE, store.fs.delete_file),
    ):
        path = store.path(name)
        if store.fs.get_file_info(path).type != pafs.FileType.NotFound:
            try:
                remove(path)
                removed = True
            except (OSError, pa.ArrowException) as err:
                logger.warning("could not remove %s (%s)", path, err)
    if removed:
        logger.info(
            "nothing was evaluated: removed this attempt's provenance and checkpoints at %s",
            store.uri,
        )


def _compact(store: ResultsStore) -> None:
    """One file per task and table instead of one per append; the results are complete
    either way, so a failure here only warns."""
    try:
        store.compact()
    except (OSError, pa.ArrowException) as err:
        logger.warning(
            "results at %s are complete but stay in many small files: compacting them failed "
            "(%s); ResultsStore(uri).compact() retries it",
            store.uri,
            err,
        )


async def _run_with_progress(
    loop: SweepLoop,
    runs: list,
    progress: Progress,
    on_progress,
    backup: CacheBackup,
    stop: list[str] | None = None,
) -> list:
    async def report() -> None:
        last_backup = time.monotonic()
        while True:
            await asyncio.sleep(PROGRESS_INTERVAL_S)
            progress.outage = await _outage_line(loop.backends)
            if on_progress is not None:
                on_progress(progress)
            else:
                logger.info("%s", progress.line())
            if time.monotonic() - last_backup >= BACKUP_INTERVAL_S:
                last_backup = time.monotonic()
                await _backup(backup)

    reporter = asyncio.create_task(report())
    try:
        with contextlib.nullcontext() if stop is None else cancel_on_signals(stop):
            return await loop.run_all(runs)
    finally:
        reporter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reporter
        await _backup(backup)  # also when the sweep stops on an error: answers paid so far


async def _outage_line(backends: Any) -> str:
    """The scoring pool's outage line ("" when healthy or not tracked)."""
    view_of = getattr(getattr(backends, "scoring", None), "health_view", None)
    if view_of is None:
        return ""
    try:
        view = await view_of()
    except Exception:  # progress must never stop a sweep
        return ""
    return view.line() if view is not None else ""


async def _backup(backup: CacheBackup) -> None:
    try:
        await asyncio.to_thread(backup.sync)
    except Exception as err:  # the sweep goes on; the next sync copies what this one missed
        logger.warning("copying the response cache to the results failed (%s)", err)


#: What a sweep recorded before a section existed had that section's defaults.
_UNRECORDED: dict[str, Any] = {
    "prompts": dataclasses.asdict(PromptsConfig()),
    "data": dataclasses.asdict(DataConfig()),
}


def _check_same_sweep(old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuse to resume a sweep with a config that would change its results."""
    for section in (
        "tasks",
        "seeds",
        "methods",
        "method_options",
        "budget",
        "data_dir",
        "optimizer",
        "prompts",
        "data",
    ):
        default = _UNRECORDED.get(section)
        if old.get(section, default) != new.get(section, default):
            raise ConfigError(
                section,
                new.get(section),
                f"the value of the sweep being resumed ({old.get(section)!r})",
                "resume with the original config, or start a new sweep under another output.path",
            )
    for name in (
        "model",
        "intrinsic_dim",
        "n_prompt_tokens",
        "projection_init",
        "projection_scale",
        "max_new_tokens",
    ):
        if old.get("generator", {}).get(name) != new.get("generator", {}).get(name):
            raise ConfigError(
                f"generator.{name}",
                new["generator"].get(name),
                f"the value of the sweep being resumed ({old['generator'].get(name)!r})",
                "resume with the original config",
            )
