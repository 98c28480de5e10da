"""A user's own task: examples in a CSV, JSON lines or Parquet file, read with pyarrow.

The file holds one example per row: an input column, an answer column (one answer, or a list
of accepted answers) and optionally a split column (``demo``, ``dev`` or ``test``). It may be a
local path (relative to the working directory) or any ``pyarrow.fs`` URI (``file:///...``,
``s3://bucket/key.parquet``, ``gs://...``).

- CSV (``.csv``; ``.tsv`` is tab-separated): a header row, then one example per line; every
  cell is read as text. A cell can hold several accepted answers split by ``separator``.
- JSON lines (``.jsonl``, ``.ndjson``): one object per line; the answer may be a string, a
  number or a list of them.
- Parquet (``.parquet``, ``.pq``): string or list-of-string columns.

Anything wrong is refused with one line that names the file, the row or column, and the fix
(:class:`~izero.errors.TaskDataError`). The file's SHA-256 is kept with the task so that a
resumed sweep can refuse a file that changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs

from izero.errors import TaskDataError
from izero.tasks.metrics import metric_spec
from izero.tasks.splits import TABLE_SOURCE
from izero.tasks.types import Example, Task

logger = logging.getLogger(__name__)

#: File suffix -> format.
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Formats a task file can have.
FORMATS = ("csv", "tsv", "jsonl", "parquet")
_FORMAT_NAMES = {"csv": "CSV", "tsv": "TSV", "jsonl": "JSON lines", "parquet": "Parquet"}
_MIXED_JSON_RE = re.compile(r"Column\(/([^)]*)\) changed from (\w+) to (\w+) in row (\d+)")
#: Values of a split column.
SPLIT_VALUES = ("demo", "dev", "test")


def _open(path: str) -> tuple[pafs.FileSystem, str, str]:
    """(filesystem, path inside it, how to show it) of a local path or pyarrow.fs URI."""
    if "://" in path:
        try:
            fs, inner = pafs.FileSystem.from_uri(path)
        except (pa.ArrowException, ValueError, OSError) as exc:
            raise TaskDataError(
                f"task file URI {path!r} cannot be opened ({exc}). Fix: use a local path or a "
                "pyarrow.fs URI (file:///abs/path.csv, s3://bucket/key.parquet, gs://...) with "
                "its credentials in the environment"
            ) from exc
        return fs, inner, path
    local = Path(path).expanduser().resolve()
    return pafs.LocalFileSystem(), str(local), path


def file_format(path: str, format: str | None = None) -> str:
    """The format of ``path``: ``format`` when given, else from the suffix.

    Raises:
        TaskDataError: unknown format or suffix.
    """
    if format is not None:
        if format not in FORMATS:
            raise TaskDataError(
                f"task file {path!r}: unknown format {format!r}. Fix: use one of "
                f"{', '.join(FORMATS)}"
            )
        return format
    name = path.rsplit("/", 1)[-1].lower()
    for suffix, fmt in SUFFIX_FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise TaskDataError(
        f"task file {path!r}: cannot tell its format from the name. Fix: name it "
        f"{', '.join(SUFFIX_FORMATS)}, or set format: to one of {', '.join(FORMATS)}"
    )


def read_bytes(path: str) -> bytes:
    """The bytes of a local file or ``pyarrow.fs`` URI.

    Raises:
        TaskDataError: it cannot be opened or read.
    """
    return _read(*_open(path))


def _read(fs: pafs.FileSystem, inner: str, shown: str) -> bytes:
    try:
        info = fs.get_file_info(inner)
        if info.type == pafs.FileType.NotFound:
            raise TaskDataError(
                f"task file {shown!r} does not exist. Fix: check the path (relative paths are "
                "relative to the working directory) or the URI"
            )
        if info.type != pafs.FileType.File:
            raise TaskDataError(f"task file {shown!r} is not a file. Fix: point path at a file")
        with fs.open_input_stream(inner) as src:
            return src.read()
    except TaskDataError:
        raise
    except (pa.ArrowException, OSError) as exc:
        raise TaskDataError(
            f"task file {shown!r} cannot be read ({exc}). Fix: check that it exists, that it is "
            "readable, and the credentials of its storage"
        ) from exc


def _parse(data: bytes, fmt: str, shown: str, text_columns: Sequence[str]) -> pa.Table:
    buf = pa.BufferReader(data)
    try:
        if fmt in ("csv", "tsv"):
            import pyarrow.csv as pcsv

            return pcsv.read_csv(
                buf,
                parse_options=pcsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ","),
                # our columns stay text: "007" is not 7, "" is not null
                convert_options=pcsv.ConvertOptions(
                    column_types={c: pa.string() for c in text_columns},
                    strings_can_be_null=False,
                ),
            )
        if fmt == "jsonl":
            import pyarrow.json as pjson

            return pjson.read_json(buf)
        import pyarrow.parquet as pq

        return pq.read_table(buf)
    except (pa.ArrowException, OSError) as exc:
        mixed = _MIXED_JSON_RE.search(str(exc))
        if mixed is not None:  # pyarrow counts rows from 0
            column, before, after, row = mixed.groups()
            raise TaskDataError(
                f"task file {shown!r} row {int(row) + 1}, column {column!r}: a JSON {after} where "
                f"earlier rows have a {before}. Fix: write every value of a column the same way "
                '(all lists such as ["Bern", "Berne"], or all single values)'
            ) from exc
        raise TaskDataError(
            f"task file {shown!r} is not valid {_FORMAT_NAMES[fmt]} ({exc}). Fix: correct the "
            "file, or set format: if the name's suffix is misleading"
        ) from exc


def _text(value: Any) -> str | None:
    """A cell as text: strings as they are, numbers and booleans as JSON writes them (a whole
    float as an integer: pyarrow reads a JSON column of 4 and 0.5 as 4.0 and 0.5)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return None


def _answers(value: Any, separator: str | None) -> tuple[str, ...] | None:
    """The accepted answers of an answer cell (blanks and repeats dropped), None if unusable."""
    if isinstance(value, (list, tuple)):
        items = [_text(v) for v in value]
        if any(v is None for v in items):
            return None
    else:
        text = _text(value)
        if text is None:
            return None
        items = text.split(separator) if separator else [text]
    return tuple(a for a in dict.fromkeys(s.strip() for s in items) if a)


def read_task_file(
    *,
    name: str,
    path: str,
    input: str = "input",
    output: str = "output",
    metric: str = "exact_match",
    extract: str | None = None,
    split: str | None = None,
    separator: str | None = None,
    annotations: Sequence[str] = (),
    format: str | None = None,
) -> Task:
    """Load task ``name`` from the file at ``path``.

    Args:
        name: the task's name in the sweep.
        path: a local path or a ``pyarrow.fs`` URI.
        input, output: column names of the input text and of the answer (a string, or a list
            of accepted answers; the first is shown in demonstrations).
        metric: a built-in metric or a plug-in ``module:function``.
        extract: answer extraction before the metric (``last_number``, ``regex:<pattern>``).
        split: optional column with ``demo``/``dev``/``test`` per row; without it the rows are
            split by seed (:func:`~izero.tasks.splits.make_splits`).
        separator: splits a text answer cell into several accepted answers (e.g. ``"|"``).
        annotations: reference instructions written by a person (the ``manual`` baseline).
        format: ``csv``, ``tsv``, ``jsonl`` or ``parquet``; None = from the suffix.

    Raises:
        TaskDataError: unreadable file or URI, unknown format, invalid content, missing column,
            no rows, an empty input or answer, or a bad split value (one line: file, row or
            column, fix).
    """
    fmt = file_format(path, format)
    fs, inner, shown = _open(path)
    data = _read(fs, inner, shown)
    if not data.strip():
        raise TaskDataError(
            f"task file {shown!r} is empty. Fix: write a header and one row per example"
            if fmt in ("csv", "tsv")
            else f"task file {shown!r} is empty. Fix: write one row per example"
        )
    wanted = [c for c in (input, output, split) if c is not None]
    table = _parse(data, fmt, shown, wanted)
    found = table.column_names
    for option, column in (("input", input), ("output", output), ("split", split)):
        if column is not None and column not in found:
            raise TaskDataError(
                f"task file {shown!r} has no column {column!r} (the {option} column; columns "
                f"found: {', '.join(found) or 'none'}). Fix: set {option}: to one of those, or "
                "add the column"
            )
    if table.num_rows == 0:
        raise TaskDataError(
            f"task file {shown!r} has no rows (columns: {', '.join(found)}). Fix: add one row "
            "per example"
        )
    inputs = table.column(input).to_pylist()
    outputs = table.column(output).to_pylist()
    splits = table.column(split).to_pylist() if split is not None else None
    pools: dict[str, list[Example]] = {value: [] for value in SPLIT_VALUES}
    rows: list[Example] = []
    for i, (raw_in, raw_out) in enumerate(zip(inputs, outputs, strict=True)):
        row = i + 1
        text = _text(raw_in)
        if text is None or not text.strip():
            raise TaskDataError(
                f"task file {shown!r} row {row}, column {input!r}: the input is empty or not "
                "text. Fix: fill it in or remove the row"
            )
        answers = _answers(raw_out, separator)
        if not answers:
            raise TaskDataError(
                f"task file {shown!r} row {row}, column {output!r}: no answer (got "
                f"{raw_out!r}). Fix: give at least one non-empty answer or remove the row"
            )
        example = Example(input=text, answers=answers)
        if splits is None:
            rows.append(example)
            continue
        value = _text(splits[i])
        label = value.strip().lower() if value is not None else None
        if label not in pools:
            raise TaskDataError(
                f"task file {shown!r} row {row}, column {split!r}: split {splits[i]!r} is not "
                f"one of {', '.join(SPLIT_VALUES)}. Fix: mark each row demo, dev or test"
            )
        pools[label].append(example)
    digest = hashlib.sha256(data).hexdigest()
    common = {
        "name": name,
        "metric": metric_spec(metric, extract),
        "annotations": tuple(annotations),
        "source": TABLE_SOURCE,
        "uri": path,
        "digest": digest,
    }
    if splits is None:
        return Task(induce=tuple(rows), execute=(), **common)
    return Task(
        induce=tuple(pools["dev"]),
        execute=tuple(pools["test"]),
        demo_pool=tuple(pools["demo"]),
        **common,
    )
