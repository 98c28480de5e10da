"""Parquet schemas of a sweep's results and builders that validate rows into tables.

Three tables, each written as hive-partitioned Parquet (partitioned by ``task``):

- ``evaluations``: one row per evaluated instruction (:data:`EVALUATIONS_SCHEMA`).
- ``summaries``: one row per (task, method, seed) with the test score (:data:`SUMMARIES_SCHEMA`).
- ``calls``: one row per black-box call, for the rate-limit plot (:data:`CALLS_SCHEMA`).

Every field carries its documentation in the field metadata under ``b"doc"``, and every schema
names itself under :data:`SCHEMA_NAME_KEY`. The builders (:func:`evaluations_table`,
:func:`summaries_table`, :func:`calls_table`) take dicts or dataclasses and refuse a missing
required field, an unknown field or a value of the wrong type with a :class:`ResultsError`
naming the field. Nullable fields may be left out (they become null).

Timestamps are UTC (``timestamp[us, tz=UTC]``); builders take timezone-aware datetimes or
POSIX seconds (``time.time()``), never naive datetimes (their zone is unknowable).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from izero.errors import ResultsError

#: Schema metadata key holding the table's name ("evaluations", "summaries", "calls").
SCHEMA_NAME_KEY = b"izero.schema"
#: Schema metadata key holding the schema version (bumped on incompatible changes).
SCHEMA_VERSION_KEY = b"izero.schema_version"
#: Schema metadata key holding the sweep provenance as JSON (see ``provenance.py``).
PROVENANCE_KEY = b"izero.provenance"
#: Field metadata key holding a column's documentation.
DOC_KEY = b"doc"
#: Current schema version.
SCHEMA_VERSION = "1"
#: The partition column of every table.
PARTITION_COLUMN = "task"

TIMESTAMP = pa.timestamp("us", tz="UTC")
FLOAT_LIST = pa.list_(pa.float64())


@dataclasses.dataclass(frozen=True)
class _Column:
    name: str
    type: pa.DataType
    nullable: bool
    doc: str

    def field(self) -> pa.Field:
        return pa.field(self.name, self.type, nullable=self.nullable, metadata={DOC_KEY: self.doc})


def _schema(name: str, columns: Sequence[_Column]) -> pa.Schema:
    return pa.schema(
        [c.field() for c in columns],
        metadata={SCHEMA_NAME_KEY: name.encode(), SCHEMA_VERSION_KEY: SCHEMA_VERSION.encode()},
    )


_KEY_COLUMNS = (
    _Column("sweep", pa.string(), False, "Name of the sweep the row belongs to."),
    _Column("task", pa.string(), False, "Task name (also the hive partition key)."),
    _Column("method", pa.string(), False, "Method: instructzero, random, ape, manual, ..."),
    _Column("seed", pa.int64(), False, "Seed of this (task, method) run."),
)

_EVALUATION_COLUMNS = (
    *_KEY_COLUMNS,
    _Column("round", pa.int64(), False, "Optimisation round; 0 is the initial design."),
    _Column("eval_index", pa.int64(), False, "0-based position of the evaluation in its run."),
    _Column("z", FLOAT_LIST, True, "Soft prompt (d numbers); null for methods without one."),
    _Column("instruction", pa.string(), False, "The instruction text that was scored."),
    _Column(
        "dev_score",
        pa.float64(),
        True,
        "Mean metric over answered dev examples, in [0, 1]; null when none was answered.",
    ),
    _Column(
        "score_vector",
        FLOAT_LIST,
        False,
        "Per-dev-example scores in dev order; null entries are failed calls (not wrong answers).",
    ),
    _Column("n_answered", pa.int64(), False, "Dev examples answered by the black box."),
    _Column("n_failed", pa.int64(), False, "Dev examples whose call failed after retries."),
    _Column("calls", pa.int64(), False, "Black-box calls made for this evaluation (cache misses)."),
    _Column("cache_hits", pa.int64(), False, "Answers served from the response cache."),
    _Column("prompt_tokens", pa.int64(), False, "Prompt tokens billed for this evaluation."),
    _Column("completion_tokens", pa.int64(), False, "Completion tokens billed."),
    _Column("cost_usd", pa.float64(), False, "Cost of this evaluation in US dollars."),
    _Column("latency_s", pa.float64(), False, "Seconds from first call sent to last answer."),
    _Column(
        "gen_started_at",
        TIMESTAMP,
        True,
        "When generation of the instruction started (UTC); null without a generator.",
    ),
    _Column("scored_at", TIMESTAMP, False, "When scoring finished (UTC)."),
    _Column(
        "duplicate_of",
        pa.int64(),
        True,
        "eval_index of an earlier identical instruction whose scores this row reuses; null "
        "for the first occurrence.",
    ),
    _Column("generator_model", pa.string(), True, "Generator model id; null without one."),
    _Column("blackbox_model", pa.string(), False, "Black-box model id."),
)

_SUMMARY_COLUMNS = (
    *_KEY_COLUMNS,
    _Column("best_instruction", pa.string(), True, "Best instruction by dev score."),
    _Column("best_eval_index", pa.int64(), True, "eval_index of the best instruction."),
    _Column("best_dev_score", pa.float64(), True, "Dev score of the best instruction."),
    _Column(
        "test_score",
        pa.float64(),
        True,
        "Mean metric of the best instruction over answered test examples; null if none.",
    ),
    _Column(
        "test_score_vector",
        FLOAT_LIST,
        False,
        "Per-test-example scores; null entries are failed calls.",
    ),
    _Column("n_test", pa.int64(), False, "Test examples scored (answered or failed)."),
    _Column("n_evaluations", pa.int64(), False, "Evaluations in the run, duplicates included."),
    _Column("n_unique_instructions", pa.int64(), False, "Distinct instructions evaluated."),
    _Column("total_calls", pa.int64(), False, "Black-box calls of the run, test included."),
    _Column("total_prompt_tokens", pa.int64(), False, "Prompt tokens of the run."),
    _Column("total_completion_tokens", pa.int64(), False, "Completion tokens of the run."),
    _Column("total_cost_usd", pa.float64(), False, "Cost of the run in US dollars."),
    _Column("wall_s", pa.float64(), False, "Wall-clock seconds from start to finish of the run."),
    _Column("finished_at", TIMESTAMP, False, "When the run finished (UTC)."),
    _Column("generator_model", pa.string(), True, "Generator model id; null without one."),
    _Column("blackbox_model", pa.string(), False, "Black-box model id."),
)

_CALL_COLUMNS = (
    *_KEY_COLUMNS,
    _Column("started_at", TIMESTAMP, False, "When the call was first sent (UTC)."),
    _Column("finished_at", TIMESTAMP, False, "When the call ended (UTC)."),
    _Column(
        "status",
        pa.string(),
        False,
        'Final status: "ok", an HTTP status such as "429" or "500", "timeout", "error".',
    ),
    _Column("attempts", pa.int64(), False, "HTTP requests sent for the call (0 when cached)."),
    _Column("prompt_tokens", pa.int64(), False, "Prompt tokens billed."),
    _Column("completion_tokens", pa.int64(), False, "Completion tokens billed."),
    _Column("cached", pa.bool_(), False, "Answered from the response cache (no request sent)."),
    _Column(
        "purpose",
        pa.string(),
        True,
        'Why the call was made: "score" (an instruction answered a dev or test example) or '
        '"propose" (an LLM proposed instructions, e.g. for ape); null in results of izero <= 0.2, '
        "which made scoring calls only.",
    ),
    _Column(
        "cost_usd",
        pa.float64(),
        True,
        "Cost of the call in US dollars (0 when cached or failed); null in izero <= 0.2 results.",
    ),
)

#: The black-box response cache, copied into the results when it lives elsewhere (results on
#: object storage, cache on the driver's disk), so a resume on another machine pays nothing
#: twice. Not a results table: no task column, no partitions.
CACHE_BACKUP_SCHEMA = pa.schema(
    [
        pa.field("key", pa.string(), False),
        pa.field("text", pa.string(), False),
        pa.field("prompt_tokens", pa.int64(), False),
        pa.field("completion_tokens", pa.int64(), False),
        pa.field("model", pa.string(), False),
        pa.field("created", pa.float64(), False),
    ]
)

#: One row per evaluated instruction.
EVALUATIONS_SCHEMA = _schema("evaluations", _EVALUATION_COLUMNS)
#: One row per (task, method, seed).
SUMMARIES_SCHEMA = _schema("summaries", _SUMMARY_COLUMNS)
#: One row per black-box call.
CALLS_SCHEMA = _schema("calls", _CALL_COLUMNS)

#: Table name -> schema.
SCHEMAS: dict[str, pa.Schema] = {
    "evaluations": EVALUATIONS_SCHEMA,
    "summaries": SUMMARIES_SCHEMA,
    "calls": CALLS_SCHEMA,
}


def field_doc(schema: pa.Schema, name: str) -> str:
    """The documentation of column ``name`` of ``schema``."""
    return schema.field(name).metadata[DOC_KEY].decode()


def _record_fields(columns: Sequence[_Column]) -> list[tuple[str, Any, Any]]:
    py = {
        pa.string(): str,
        pa.int64(): int,
        pa.float64(): float,
        pa.bool_(): bool,
        TIMESTAMP: dt.datetime,
        FLOAT_LIST: tuple,
    }
    out: list[tuple[str, Any, Any]] = []
    # Required fields first (dataclasses need defaults last), each group in schema order.
    for c in (c for c in columns if not c.nullable):
        out.append((c.name, py[c.type], dataclasses.field()))
    for c in (c for c in columns if c.nullable):
        out.append((c.name, py[c.type] | None, dataclasses.field(default=None)))
    return out


def _make_record(name: str, columns: Sequence[_Column], doc: str) -> type:
    cls = dataclasses.make_dataclass(name, _record_fields(columns), frozen=True, kw_only=True)
    cls.__module__ = __name__
    cls.__doc__ = doc + "\n\nFields:\n" + "\n".join(f"- ``{c.name}``: {c.doc}" for c in columns)
    return cls


#: A row of ``evaluations`` as a frozen dataclass (nullable fields default to None).
EvaluationRecord = _make_record(
    "EvaluationRecord", _EVALUATION_COLUMNS, "One evaluated instruction."
)
#: A row of ``summaries``.
SummaryRecord = _make_record("SummaryRecord", _SUMMARY_COLUMNS, "One (task, method, seed) run.")
#: A row of ``calls``.
CallRecord = _make_record("CallRecord", _CALL_COLUMNS, "One black-box call.")


# --------------------------------------------------------------------------- validation


def _bad(table: str, index: int, name: str, expected: str, value: object) -> ResultsError:
    shown = repr(value)
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return ResultsError(
        f"{table} row {index}: field '{name}' expected {expected}, got {shown} "
        f"({type(value).__name__}); fix the value passed to the results writer"
    )


def _as_float(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _convert(table: str, index: int, col: _Column, value: object) -> object:
    if value is None:
        if col.nullable:
            return None
        raise _bad(table, index, col.name, "a value (the field is not nullable)", value)
    t = col.type
    if t == pa.string():
        if isinstance(value, str):
            return value
        raise _bad(table, index, col.name, "a str", value)
    if t == pa.int64():
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise _bad(table, index, col.name, "an int", value)
    if t == pa.bool_():
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            return bool(value)
        raise _bad(table, index, col.name, "a bool", value)
    if t == pa.float64():
        out = _as_float(value)
        if out is None:
            raise _bad(table, index, col.name, "a finite float (None if missing)", value)
        return out
    if t == FLOAT_LIST:
        items = value.tolist() if hasattr(value, "tolist") else value
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise _bad(table, index, col.name, "a sequence of floats", value)
        items = list(items)
        out_list: list[float | None] = []
        for item in items:
            if item is None:
                out_list.append(None)
                continue
            f = _as_float(item)
            if f is None:
                raise _bad(table, index, col.name, "a sequence of finite floats or None", value)
            out_list.append(f)
        return out_list
    if t == TIMESTAMP:
        if isinstance(value, dt.datetime):
            if value.tzinfo is None or value.utcoffset() is None:
                raise _bad(
                    table, index, col.name, "a timezone-aware datetime or POSIX seconds", value
                )
            return value.astimezone(dt.timezone.utc)
        seconds = _as_float(value)
        if seconds is None:
            raise _bad(table, index, col.name, "a timezone-aware datetime or POSIX seconds", value)
        return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)
    raise AssertionError(f"unhandled column type {t}")  # pragma: no cover


def _as_mapping(table: str, index: int, row: object) -> Mapping[str, object]:
    if isinstance(row, Mapping):
        return row
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    raise ResultsError(
        f"{table} row {index}: expected a dict or a dataclass, got {type(row).__name__}; "
        "pass one mapping of column -> value per row"
    )


def _columns_of(schema: pa.Schema) -> tuple[_Column, ...]:
    return tuple(
        _Column(f.name, f.type, f.nullable, (f.metadata or {}).get(DOC_KEY, b"").decode())
        for f in schema
    )


def build_table(schema: pa.Schema, rows: Iterable[object]) -> pa.Table:
    """Validate ``rows`` (dicts or dataclasses) against ``schema`` and return a table.

    Raises:
        ResultsError: a required field is missing, a field is unknown, or a value has the
            wrong type; the message names the table, the row and the field.
    """
    table_name = (schema.metadata or {}).get(SCHEMA_NAME_KEY, b"table").decode()
    columns = _columns_of(schema)
    names = {c.name for c in columns}
    converted: list[dict[str, object]] = []
    for index, raw in enumerate(rows):
        row = _as_mapping(table_name, index, raw)
        extra = sorted(set(row) - names)
        if extra:
            raise ResultsError(
                f"{table_name} row {index}: unknown field '{extra[0]}'"
                f"{' (and ' + str(len(extra) - 1) + ' more)' if len(extra) > 1 else ''}; "
                f"allowed fields: {', '.join(c.name for c in columns)}"
            )
        out: dict[str, object] = {}
        for col in columns:
            if col.name not in row:
                if col.nullable:
                    out[col.name] = None
                    continue
                raise ResultsError(
                    f"{table_name} row {index}: missing required field '{col.name}' "
                    f"({col.type}: {col.doc}); add it to the row"
                )
            out[col.name] = _convert(table_name, index, col, row[col.name])
        converted.append(out)
    return pa.Table.from_pylist(converted, schema=schema)


def validate_table(schema: pa.Schema, table: pa.Table) -> pa.Table:
    """Check an existing Arrow table against ``schema``; return it cast to ``schema``.

    Raises:
        ResultsError: a column is missing, unknown, of another type, or holds nulls where the
            schema forbids them.
    """
    table_name = (schema.metadata or {}).get(SCHEMA_NAME_KEY, b"table").decode()
    extra = [n for n in table.column_names if schema.get_field_index(n) < 0]
    if extra:
        raise ResultsError(
            f"{table_name} table: unknown field '{extra[0]}'; allowed fields: "
            f"{', '.join(schema.names)}"
        )
    arrays = []
    for field in schema:
        if field.name not in table.column_names:
            if not field.nullable:
                raise ResultsError(
                    f"{table_name} table: missing required field '{field.name}' ({field.type})"
                )
            arrays.append(pa.nulls(table.num_rows, type=field.type))
            continue
        column = table.column(field.name)
        if not column.type.equals(field.type):
            raise ResultsError(
                f"{table_name} table: field '{field.name}' expected type {field.type}, got "
                f"{column.type}; cast the column or build the table with the izero builders"
            )
        if not field.nullable and column.null_count:
            raise ResultsError(
                f"{table_name} table: field '{field.name}' has {column.null_count} null(s) "
                "but is not nullable"
            )
        arrays.append(column)
    return pa.Table.from_arrays(arrays, schema=schema)


def evaluations_table(rows: Iterable[object]) -> pa.Table:
    """Build an ``evaluations`` table from dicts or :data:`EvaluationRecord` objects."""
    return build_table(EVALUATIONS_SCHEMA, rows)


def summaries_table(rows: Iterable[object]) -> pa.Table:
    """Build a ``summaries`` table from dicts or :data:`SummaryRecord` objects."""
    return build_table(SUMMARIES_SCHEMA, rows)


def calls_table(rows: Iterable[object]) -> pa.Table:
    """Build a ``calls`` table from dicts or :data:`CallRecord` objects."""
    return build_table(CALLS_SCHEMA, rows)
