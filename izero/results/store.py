"""One sweep's results on a local disk or any ``pyarrow.fs`` filesystem (s3://, gs://, ...).

Layout under the store's root::

    evaluations/task=<task>/part-<uuid>.parquet   one row per evaluated instruction
    summaries/task=<task>/part-<uuid>.parquet     one row per (task, method, seed)
    calls/task=<task>/part-<uuid>.parquet         one row per black-box call
    provenance.json                               config, seeds, versions, git commit
    checkpoints/<name>.json                       small JSON checkpoints (driver, per round)
    blackbox_cache/part-<uuid>.parquet            copy of the response cache, when it lives
                                                  off the results (object storage)
    _FINISHED                                     marker written when the sweep is complete

The tables are plain hive-partitioned Parquet: ``pandas.read_parquet(root + "/evaluations")``,
``pyarrow.dataset``, polars and DuckDB read them directly.

DuckDB: ``read_parquet('<root>/evaluations/*/part-*.parquet', hive_partitioning = true)``;
polars: ``pl.scan_parquet('<root>/evaluations', hive_partitioning=True)``.

Appends never rewrite a file: each append writes new files under unique names, and
:meth:`ResultsStore.compact` merges each task's files into one when the sweep ends. A file is
written under a hidden temporary name (``.tmp-<uuid>-<name>.partial``: readers skip names
starting with ``.``, and no ``*.parquet`` glob matches it) and moved to its final name once
complete, so a crash mid-write leaves no partial file visible, and several writers
(processes, nodes) can append to the same store at once. On object stores (s3://, gs://) the
move is a server-side copy; an object appears only once complete either way.

Compaction writes the merged file under a hidden name (``.compacting-<uuid>.parquet``, its
metadata listing the files it replaces), deletes those, then gives it a visible name. The
readers here take a hidden merged file instead of the files it lists, so they see every row
exactly once at each step, and the next ``compact`` finishes one that a crash interrupted.

The driver's use: ``ensure_new_sweep(overwrite=...)`` before a new sweep (not on
``--resume``), ``write_provenance`` once, ``append_*`` as rows come, ``write_checkpoint``
after every round, ``compact`` and ``mark_finished`` at the end.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import logging
import re
import urllib.parse
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from izero.errors import ResultsError
from izero.results.provenance import Provenance
from izero.results.schema import (
    CACHE_BACKUP_SCHEMA,
    PARTITION_COLUMN,
    PROVENANCE_KEY,
    SCHEMAS,
    build_table,
    validate_table,
)

logger = logging.getLogger(__name__)

#: File name of the provenance JSON at the store's root.
PROVENANCE_FILE = "provenance.json"
#: File name of the "sweep finished" marker at the store's root.
FINISHED_FILE = "_FINISHED"
#: Folder of the JSON checkpoints.
CHECKPOINT_DIR = "checkpoints"
#: Prefix of temporary files (readers skip names starting with "." or "_").
TEMP_PREFIX = ".tmp-"
#: Suffix of temporary files.
TEMP_SUFFIX = ".partial"
#: Folder of the response-cache copy.
CACHE_BACKUP_DIR = "blackbox_cache"
#: Prefix of merged files not yet in place (see ``ResultsStore.compact``).
COMPACTING_PREFIX = ".compacting-"
#: Parquet metadata key of a merged file: JSON list of the file names it replaces.
COMPACTED_FROM_KEY = b"izero.compacted_from"
#: Parquet compression codec.
PARQUET_COMPRESSION = "zstd"
#: Allowed checkpoint names.
_CHECKPOINT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]{0,199}")

_UNSET = object()

#: Sort order of the tables returned by the readers.
_SORT_KEYS = {
    "evaluations": ["task", "method", "seed", "eval_index"],
    "summaries": ["task", "method", "seed"],
    "calls": ["started_at", "task", "method", "seed"],
    CACHE_BACKUP_DIR: ["key"],
}


def _hive_partitioning() -> ds.Partitioning:
    # Explicit string type: a task named "123" must not turn into an int column.
    return ds.partitioning(pa.schema([(PARTITION_COLUMN, pa.string())]), flavor="hive")


def _check_table(name: str) -> None:
    if name not in SCHEMAS:
        raise ResultsError(f"unknown results table {name!r}; expected one of {sorted(SCHEMAS)}")


def _parquet_files(infos: Sequence[pafs.FileInfo]) -> tuple[list[str], list[str]]:
    """Among ``infos``: (visible part files, merged files not yet in place), each sorted."""
    parts, merging = [], []
    for info in infos:
        if info.type != pafs.FileType.File or not info.base_name.endswith(".parquet"):
            continue
        if info.base_name.startswith(COMPACTING_PREFIX):
            merging.append(info.path)
        elif not info.base_name.startswith((".", "_")):
            parts.append(info.path)
    return sorted(parts), sorted(merging)


class ResultsStore:
    """The results of one sweep under ``uri``.

    Args:
        uri: a local path, or a URI ``pyarrow.fs.FileSystem.from_uri`` understands
            (``file:///...``, ``s3://bucket/prefix``, ``gs://...``). With ``filesystem``
            given, ``uri`` is a path inside that filesystem.
        filesystem: a ``pyarrow.fs.FileSystem`` to use instead of resolving ``uri``
            (e.g. a ``SubTreeFileSystem`` or an S3 filesystem with explicit credentials).
            None = resolve from ``uri``.

    Raises:
        ResultsError: the URI cannot be resolved.
    """

    def __init__(self, uri: str | Path, *, filesystem: pafs.FileSystem | None = None):
        text = str(uri)
        if not text:
            raise ResultsError("results uri: got an empty string; pass a folder path or URI")
        self.uri = text
        self._provenance_cache: Provenance | object | None = _UNSET
        if filesystem is not None:
            self.fs = filesystem
            self.root = text.rstrip("/") or "/"
        elif "://" in text:
            try:
                self.fs, root = pafs.FileSystem.from_uri(text)
            except (pa.ArrowException, ValueError, OSError) as exc:
                raise ResultsError(
                    f"results uri {text!r} cannot be opened ({exc}); use a local path or a "
                    "pyarrow.fs URI such as file:///abs/path, s3://bucket/prefix, gs://bucket/x"
                ) from exc
            self.root = root.rstrip("/") or "/"
        else:
            self.fs = pafs.LocalFileSystem()
            self.root = str(Path(text).expanduser().resolve())

    def __repr__(self) -> str:
        return f"ResultsStore({self.uri!r})"

    @property
    def local_root(self) -> Path | None:
        """The root as a local folder, or None when the store is not on the local disk."""
        return Path(self.root) if isinstance(self.fs, pafs.LocalFileSystem) else None

    # ----------------------------------------------------------------- paths and files

    def path(self, *parts: str) -> str:
        """Filesystem path of ``parts`` joined under the root."""
        return "/".join([self.root.rstrip("/"), *parts]) if parts else self.root

    def _exists(self, path: str) -> bool:
        return self.fs.get_file_info(path).type != pafs.FileType.NotFound

    def _write_bytes_atomic(self, path: str, data: bytes) -> None:
        """Write ``data`` to ``path`` via a hidden temp file and a move."""
        parent, _, name = path.rpartition("/")
        self.fs.create_dir(parent, recursive=True)
        # Hidden and without the final suffix, so no "*.parquet" glob can pick it up.
        tmp = f"{parent}/{TEMP_PREFIX}{uuid.uuid4().hex}-{name}{TEMP_SUFFIX}"
        try:
            with self.fs.open_output_stream(tmp) as out:
                out.write(data)
            self.fs.move(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError, pa.ArrowException):
                self.fs.delete_file(tmp)
            raise

    def _read_bytes(self, path: str) -> bytes | None:
        if self.fs.get_file_info(path).type != pafs.FileType.File:
            return None
        with self.fs.open_input_stream(path) as src:
            return src.read()

    # ----------------------------------------------------------------- provenance

    def write_provenance(self, provenance: Provenance) -> None:
        """Write ``provenance.json`` (atomically; replaces an earlier one)."""
        self._write_bytes_atomic(self.path(PROVENANCE_FILE), provenance.to_json().encode())
        self._provenance_cache = provenance

    def read_provenance(self) -> Provenance | None:
        """The sweep's provenance, or None when none was written."""
        data = self._read_bytes(self.path(PROVENANCE_FILE))
        return None if data is None else Provenance.from_json(data)

    # ----------------------------------------------------------------- appends

    def append_evaluations(
        self, rows: Iterable[object] | pa.Table, *, provenance: Provenance | None = None
    ) -> list[str]:
        """Append evaluation rows (dicts, ``EvaluationRecord`` objects or an Arrow table).

        Returns the paths of the new files (one per task present in ``rows``).
        """
        return self._append("evaluations", rows, provenance)

    def append_summaries(
        self, rows: Iterable[object] | pa.Table, *, provenance: Provenance | None = None
    ) -> list[str]:
        """Append summary rows (dicts, ``SummaryRecord`` objects or an Arrow table)."""
        return self._append("summaries", rows, provenance)

    def append_calls(
        self, rows: Iterable[object] | pa.Table, *, provenance: Provenance | None = None
    ) -> list[str]:
        """Append call rows (dicts, ``CallRecord`` objects or an Arrow table)."""
        return self._append("calls", rows, provenance)

    def _append(
        self, name: str, rows: Iterable[object] | pa.Table, provenance: Provenance | None
    ) -> list[str]:
        schema = SCHEMAS[name]
        table = (
            validate_table(schema, rows)
            if isinstance(rows, pa.Table)
            else build_table(schema, rows)
        )
        if table.num_rows == 0:
            return []
        if provenance is None:
            provenance = self._cached_provenance()
        metadata = dict(schema.metadata or {})
        if provenance is not None:
            metadata[PROVENANCE_KEY] = provenance.to_json().encode()
        written = []
        tasks = pc.unique(table.column(PARTITION_COLUMN)).to_pylist()
        for task in sorted(tasks):
            part = table.filter(pc.equal(table.column(PARTITION_COLUMN), task))
            part = part.drop_columns([PARTITION_COLUMN])
            part = part.replace_schema_metadata(metadata)
            folder = f"{PARTITION_COLUMN}={urllib.parse.quote(task, safe='')}"
            path = self.path(name, folder, f"part-{uuid.uuid4().hex}.parquet")
            sink = pa.BufferOutputStream()
            pq.write_table(part, sink, compression=PARQUET_COMPRESSION)
            self._write_bytes_atomic(path, sink.getvalue().to_pybytes())
            written.append(path)
        logger.debug("appended %d %s rows in %d file(s)", table.num_rows, name, len(written))
        return written

    def _cached_provenance(self) -> Provenance | None:
        if self._provenance_cache is _UNSET:
            self._provenance_cache = self.read_provenance()
        return self._provenance_cache  # type: ignore[return-value]

    # ----------------------------------------------------------------- readers

    def dataset(self, name: str) -> ds.Dataset | None:
        """The ``pyarrow.dataset`` of table ``name`` (None when nothing was written)."""
        _check_table(name)
        return self._dataset(self.path(name), SCHEMAS[name], partitioned=True)

    def _dataset(self, folder: str, schema: pa.Schema, *, partitioned: bool) -> ds.Dataset | None:
        if self.fs.get_file_info(folder).type != pafs.FileType.Directory:
            return None
        options = {"partitioning": _hive_partitioning(), "partition_base_dir": folder}
        return ds.dataset(
            self._data_files(folder),
            schema=schema,
            format="parquet",
            filesystem=self.fs,
            **(options if partitioned else {}),
        )

    def _scan(self, folder: str, schema: pa.Schema, *, partitioned: bool, filter=None) -> pa.Table:
        """The rows under ``folder`` (an empty table when there are none)."""
        for attempt in range(3):
            dataset = self._dataset(folder, schema, partitioned=partitioned)
            if dataset is None:
                table = schema.empty_table()
                return table if filter is None else table.filter(filter)
            try:
                return dataset.to_table(filter=filter)
            except FileNotFoundError:  # a compaction moved a file between listing and reading
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _data_files(self, folder: str) -> list[str]:
        """The files holding table ``folder``'s rows, each row once: the visible parts, with
        a merged file not yet in place standing for the parts it lists."""
        parts, merging = _parquet_files(
            self.fs.get_file_info(pafs.FileSelector(folder, recursive=True))
        )
        replaced = {
            f"{path.rpartition('/')[0]}/{old}" for path in merging for old in self._merged(path)
        }
        return [p for p in parts if p not in replaced] + merging

    def _merged(self, path: str) -> list[str]:
        """The part names a merged file replaces (from its Parquet metadata)."""
        with self.fs.open_input_file(path) as f:
            metadata = pq.read_schema(f).metadata or {}
        return json.loads(metadata.get(COMPACTED_FROM_KEY, b"[]"))

    def _read(
        self,
        name: str,
        *,
        tasks: Sequence[str] | None,
        methods: Sequence[str] | None,
        seeds: Sequence[int] | None,
        filter: ds.Expression | None,
        columns: Sequence[str] | None,
    ) -> pa.Table:
        schema = SCHEMAS[name]
        expr = filter
        for col, values in (("task", tasks), ("method", methods), ("seed", seeds)):
            if values is not None:
                term = ds.field(col).isin(list(values))
                expr = term if expr is None else expr & term
        table = self._scan(self.path(name), schema, partitioned=True, filter=expr)
        if table.num_rows:
            table = table.sort_by([(k, "ascending") for k in _SORT_KEYS[name]])
        table = table.replace_schema_metadata(schema.metadata)
        if columns is not None:
            table = table.select(list(columns))
        return table

    def read_evaluations(
        self,
        *,
        tasks: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        filter: ds.Expression | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """All evaluation rows matching the filters, sorted by task, method, seed, eval_index.

        Args:
            tasks, methods, seeds: keep only these values (None = all).
            filter: an extra ``pyarrow.dataset`` expression, e.g. ``ds.field("round") > 0``.
            columns: columns to return (None = all, in schema order).
        """
        return self._read(
            "evaluations",
            tasks=tasks,
            methods=methods,
            seeds=seeds,
            filter=filter,
            columns=columns,
        )

    def read_summaries(
        self,
        *,
        tasks: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        filter: ds.Expression | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """All summary rows, sorted by task, method, seed (filters as in read_evaluations)."""
        return self._read(
            "summaries",
            tasks=tasks,
            methods=methods,
            seeds=seeds,
            filter=filter,
            columns=columns,
        )

    def read_calls(
        self,
        *,
        tasks: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        filter: ds.Expression | None = None,
        columns: Sequence[str] | None = None,
    ) -> pa.Table:
        """All call rows, sorted by start time (filters as in read_evaluations)."""
        return self._read(
            "calls", tasks=tasks, methods=methods, seeds=seeds, filter=filter, columns=columns
        )

    # ----------------------------------------------------------------- response-cache copy

    def append_cache_backup(self, entries: Sequence[tuple]) -> str | None:
        """Add response-cache entries (``ResponseCache.entries_after`` tuples) to the copy
        kept with the results; returns the new file's path (None for no entries)."""
        if not entries:
            return None
        names = CACHE_BACKUP_SCHEMA.names
        table = pa.Table.from_pylist(
            [dict(zip(names, e, strict=True)) for e in entries], schema=CACHE_BACKUP_SCHEMA
        )
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression=PARQUET_COMPRESSION)
        path = self.path(CACHE_BACKUP_DIR, f"part-{uuid.uuid4().hex}.parquet")
        self._write_bytes_atomic(path, sink.getvalue().to_pybytes())
        return path

    def read_cache_backup(self) -> list[tuple]:
        """Every entry of the response-cache copy (as :meth:`append_cache_backup` takes)."""
        folder = self.path(CACHE_BACKUP_DIR)
        table = self._scan(folder, CACHE_BACKUP_SCHEMA, partitioned=False)
        return [tuple(row.values()) for row in table.to_pylist()]

    # ----------------------------------------------------------------- compaction

    def compact(self, names: Sequence[str] = tuple(SCHEMAS)) -> dict[str, tuple[int, int]]:
        """Merge each task's part files of tables ``names`` into one file per task.

        Appends write a file per call, so a long sweep leaves thousands of small files, slow
        to list and read on object stores. Run this when no other process compacts the same
        store (the driver does, once the sweep is done); appends meanwhile are safe: files
        written after the listing are left as they are. Finishes any compaction a crash
        interrupted.

        Returns: per table (and the response-cache copy), (files before, files after).
        """
        report = {}
        for name in names:
            if name not in SCHEMAS:
                raise ResultsError(
                    f"unknown results table {name!r}; expected one of {sorted(SCHEMAS)}"
                )
            folder = self.path(name)
            if self.fs.get_file_info(folder).type != pafs.FileType.Directory:
                continue
            before = after = 0
            for part_dir in self.fs.get_file_info(pafs.FileSelector(folder)):
                if part_dir.type != pafs.FileType.Directory:
                    continue
                n_before, n_after = self._compact_partition(name, part_dir.path)
                before, after = before + n_before, after + n_after
            report[name] = (before, after)
            if before != after:
                logger.info("compacted %s: %d files into %d", name, before, after)
        backup = self.path(CACHE_BACKUP_DIR)
        if self.fs.get_file_info(backup).type == pafs.FileType.Directory:
            report[CACHE_BACKUP_DIR] = self._compact_partition(CACHE_BACKUP_DIR, backup)
        return report

    def _compact_partition(self, name: str, folder: str) -> tuple[int, int]:
        parts, merging = _parquet_files(self.fs.get_file_info(pafs.FileSelector(folder)))
        if merging:  # an earlier compaction's merged files not yet in place: finish them first
            for hidden in merging:
                self._finish_merge(hidden)
            parts, _ = _parquet_files(self.fs.get_file_info(pafs.FileSelector(folder)))
        if len(parts) < 2:
            return len(parts), len(parts)
        tables = []
        for path in parts:
            with self.fs.open_input_file(path) as f:
                tables.append(pq.ParquetFile(f).read())
        metadata = dict(tables[0].schema.metadata or {})
        metadata[COMPACTED_FROM_KEY] = json.dumps([p.rpartition("/")[2] for p in parts]).encode()
        # parts written before a column was added lack it: it becomes null there
        merged = pa.concat_tables(
            [t.replace_schema_metadata(None) for t in tables], promote_options="default"
        )
        keys = [(k, "ascending") for k in _SORT_KEYS[name] if k != PARTITION_COLUMN]
        merged = merged.sort_by(keys).replace_schema_metadata(metadata)
        sink = pa.BufferOutputStream()
        pq.write_table(merged, sink, compression=PARQUET_COMPRESSION)
        hidden = f"{folder}/{COMPACTING_PREFIX}{uuid.uuid4().hex}.parquet"
        self._write_bytes_atomic(hidden, sink.getvalue().to_pybytes())
        self._finish_merge(hidden)
        return len(parts), 1

    def _finish_merge(self, hidden: str) -> None:
        """Delete the parts a complete merged file replaces, then put it in place."""
        folder = hidden.rpartition("/")[0]
        for old in self._merged(hidden):
            with contextlib.suppress(FileNotFoundError):
                self.fs.delete_file(f"{folder}/{old}")
        final = hidden.rpartition("/")[2].removeprefix(COMPACTING_PREFIX)
        self.fs.move(hidden, f"{folder}/part-{final}")

    # ----------------------------------------------------------------- checkpoints

    def _checkpoint_path(self, name: str) -> str:
        if not isinstance(name, str) or not _CHECKPOINT_NAME.fullmatch(name):
            raise ResultsError(
                f"checkpoint name {name!r} is not allowed; use letters, digits and _.=+- "
                "(no slashes), starting with a letter or digit, at most 200 characters"
            )
        return self.path(CHECKPOINT_DIR, f"{name}.json")

    def write_checkpoint(self, name: str, data: Any) -> None:
        """Write JSON-compatible ``data`` as checkpoint ``name``, atomically.

        A reader sees either the previous checkpoint or the new one, never a partial file.

        Raises:
            ResultsError: the name is invalid or ``data`` is not JSON-serialisable.
        """
        path = self._checkpoint_path(name)
        try:
            text = json.dumps(data, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ResultsError(
                f"checkpoint {name!r}: data is not JSON-serialisable ({exc}); store plain "
                "numbers, strings, lists and dicts"
            ) from exc
        self._write_bytes_atomic(path, text.encode())

    def read_checkpoint(self, name: str) -> Any | None:
        """Checkpoint ``name``, or None when it does not exist.

        Raises:
            ResultsError: the checkpoint is not valid JSON.
        """
        data = self._read_bytes(self._checkpoint_path(name))
        if data is None:
            return None
        try:
            return json.loads(data)
        except ValueError as exc:
            raise ResultsError(
                f"checkpoint {name!r} at {self.uri} is not valid JSON ({exc}); delete it to "
                "restart that run from the results"
            ) from exc

    def list_checkpoints(self) -> list[str]:
        """Names of all checkpoints, sorted."""
        folder = self.path(CHECKPOINT_DIR)
        if self.fs.get_file_info(folder).type != pafs.FileType.Directory:
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(folder))
        names = [
            i.base_name[: -len(".json")]
            for i in infos
            if i.type == pafs.FileType.File
            and i.base_name.endswith(".json")
            and not i.base_name.startswith(TEMP_PREFIX)
        ]
        return sorted(names)

    # ----------------------------------------------------------------- sweep state

    def exists(self) -> bool:
        """Whether anything of a sweep (data, provenance, checkpoints, marker) is here."""
        names = [*SCHEMAS, PROVENANCE_FILE, CHECKPOINT_DIR, FINISHED_FILE]
        return any(self._exists(self.path(n)) for n in names)

    def is_finished(self) -> bool:
        """Whether the sweep was marked finished."""
        return self._exists(self.path(FINISHED_FILE))

    def mark_finished(self, *, now: dt.datetime | None = None) -> None:
        """Write the finished marker (JSON with ``finished_at``)."""
        when = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
        body = json.dumps({"finished_at": when.isoformat()}).encode()
        self._write_bytes_atomic(self.path(FINISHED_FILE), body)

    def ensure_new_sweep(self, *, overwrite: bool = False) -> None:
        """Make sure a new sweep can start here.

        With ``overwrite``, everything under the root is deleted. Without it, an existing
        sweep (finished or not) is refused, so that paid work is never mixed up or lost.

        Raises:
            ResultsError: a sweep exists here and ``overwrite`` is False.
        """
        if not self.exists():
            return
        if overwrite:
            logger.warning("deleting the existing sweep at %s (--overwrite)", self.uri)
            self.fs.delete_dir_contents(self.root, missing_dir_ok=True)
            self._provenance_cache = _UNSET
            return
        state = "a finished sweep" if self.is_finished() else "an unfinished sweep"
        raise ResultsError(
            f"{state} exists at {self.uri}; use --resume to continue or --overwrite to replace"
        )
