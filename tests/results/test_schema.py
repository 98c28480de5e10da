"""Schemas carry their docs; builders refuse bad rows naming the field."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

import numpy as np
import pyarrow as pa
import pytest

from izero.errors import ResultsError
from izero.results.schema import (
    CALLS_SCHEMA,
    DOC_KEY,
    EVALUATIONS_SCHEMA,
    SCHEMA_NAME_KEY,
    SUMMARIES_SCHEMA,
    CallRecord,
    EvaluationRecord,
    SummaryRecord,
    calls_table,
    evaluations_table,
    field_doc,
    summaries_table,
    validate_table,
)
from tests.results.conftest import T0, call_rows, evaluation_row, summary_row

SCHEMAS = [
    (EVALUATIONS_SCHEMA, EvaluationRecord, "evaluations"),
    (SUMMARIES_SCHEMA, SummaryRecord, "summaries"),
    (CALLS_SCHEMA, CallRecord, "calls"),
]


@pytest.mark.parametrize(("schema", "record", "name"), SCHEMAS)
def test_every_field_is_documented_and_records_match(schema, record, name):
    assert schema.metadata[SCHEMA_NAME_KEY] == name.encode()
    for field in schema:
        assert len(field.metadata[DOC_KEY]) > 10, field.name
    assert {f.name for f in dataclasses.fields(record)} == set(schema.names)
    for f in dataclasses.fields(record):
        has_default = f.default is not dataclasses.MISSING
        assert has_default == schema.field(f.name).nullable, f.name


def test_required_columns_of_the_brief():
    for name in (
        "sweep",
        "task",
        "method",
        "seed",
        "round",
        "eval_index",
        "z",
        "instruction",
        "dev_score",
        "score_vector",
        "n_answered",
        "n_failed",
        "calls",
        "cache_hits",
        "prompt_tokens",
        "completion_tokens",
        "cost_usd",
        "latency_s",
        "gen_started_at",
        "scored_at",
        "duplicate_of",
        "generator_model",
        "blackbox_model",
    ):
        assert name in EVALUATIONS_SCHEMA.names
    assert EVALUATIONS_SCHEMA.field("z").type == pa.list_(pa.float64())
    assert EVALUATIONS_SCHEMA.field("scored_at").type == pa.timestamp("us", tz="UTC")
    assert EVALUATIONS_SCHEMA.field("dev_score").nullable
    assert not EVALUATIONS_SCHEMA.field("instruction").nullable
    assert "identical instruction" in field_doc(EVALUATIONS_SCHEMA, "duplicate_of")


def test_evaluation_rows_round_trip_from_dicts_and_records():
    row = evaluation_row("sum", "random", 3, 1, 0.25)
    row["score_vector"] = [1.0, None, 0.0]
    rec = EvaluationRecord(**row)
    table = evaluations_table([row, rec])
    assert table.schema.equals(EVALUATIONS_SCHEMA, check_metadata=True)
    out = table.to_pylist()
    assert out[0] == out[1]
    assert out[0]["score_vector"] == [1.0, None, 0.0]
    assert out[0]["scored_at"] == T0 + dt.timedelta(seconds=2)
    assert out[0]["duplicate_of"] is None


def test_nullable_fields_may_be_omitted_and_numpy_values_accepted():
    row = evaluation_row("sum", "manual", 0, 0, None)
    for name in ("z", "dev_score", "gen_started_at", "duplicate_of", "generator_model"):
        row.pop(name)
    row["seed"] = np.int64(7)
    row["score_vector"] = np.array([0.5, 1.0])
    row["scored_at"] = 1_700_000_000.5  # POSIX seconds
    out = evaluations_table([row]).to_pylist()[0]
    assert out["z"] is None and out["dev_score"] is None and out["generator_model"] is None
    assert out["seed"] == 7 and out["score_vector"] == [0.5, 1.0]
    assert out["scored_at"] == dt.datetime(2023, 11, 14, 22, 13, 20, 500000, tzinfo=dt.timezone.utc)


def test_non_utc_datetimes_are_converted():
    row = evaluation_row("sum", "random", 0, 0, 0.5)
    row["scored_at"] = dt.datetime(2026, 1, 1, 14, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    out = evaluations_table([row]).column("scored_at")[0].as_py()
    assert out == dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)


BAD_VALUES = [
    ("seed", "3", "an int"),
    ("seed", True, "an int"),
    ("seed", 1.0, "an int"),
    ("dev_score", math.nan, "finite float"),
    ("dev_score", "0.5", "finite float"),
    ("instruction", None, "not nullable"),
    ("instruction", b"bytes", "a str"),
    ("score_vector", [0.5, "x"], "finite floats"),
    ("score_vector", [math.inf], "finite floats"),
    ("score_vector", "0.5", "sequence"),
    ("z", 0.5, "sequence"),
    ("scored_at", dt.datetime(2026, 1, 1), "timezone-aware"),
    ("scored_at", "2026-01-01", "timezone-aware"),
]


@pytest.mark.parametrize(("field", "value", "expected"), BAD_VALUES)
def test_wrong_types_name_the_field(field, value, expected):
    rows = [evaluation_row("sum", "random", 0, 0, 0.5), evaluation_row("sum", "random", 0, 1, 0.5)]
    rows[1][field] = value
    with pytest.raises(ResultsError) as info:
        evaluations_table(rows)
    msg = str(info.value)
    assert f"field '{field}'" in msg and expected in msg and "row 1" in msg


def test_missing_and_extra_fields_are_refused():
    row = evaluation_row("sum", "random", 0, 0, 0.5)
    del row["n_failed"]
    with pytest.raises(ResultsError, match="missing required field 'n_failed'"):
        evaluations_table([row])
    row = evaluation_row("sum", "random", 0, 0, 0.5)
    row["dev_scroe"] = 0.5
    with pytest.raises(ResultsError, match="unknown field 'dev_scroe'"):
        evaluations_table([row])
    with pytest.raises(ResultsError, match="expected a dict or a dataclass"):
        evaluations_table([("sum", 0)])


def test_summaries_and_calls_builders():
    s = summaries_table([summary_row("sum", "random", 0, 0.5, None)])
    assert s.schema.equals(SUMMARIES_SCHEMA) and s.column("test_score")[0].as_py() is None
    rows, _ = call_rows(1)
    c = calls_table([CallRecord(**r) for r in rows])
    assert c.num_rows == len(rows)
    assert c.column("cached").to_pylist()[0] is True
    bad = dict(rows[1], cached=1)
    with pytest.raises(ResultsError, match="field 'cached' expected a bool"):
        calls_table([bad])


def test_validate_table_checks_types_and_nulls():
    table = evaluations_table([evaluation_row("sum", "random", 0, 0, 0.5)])
    assert (
        validate_table(EVALUATIONS_SCHEMA, table.drop_columns(["z"])).column("z")[0].as_py() is None
    )
    with pytest.raises(ResultsError, match="missing required field 'seed'"):
        validate_table(EVALUATIONS_SCHEMA, table.drop_columns(["seed"]))
    wrong = table.set_column(
        table.schema.get_field_index("seed"), "seed", pa.array(["0"], pa.string())
    )
    with pytest.raises(ResultsError, match="field 'seed' expected type int64, got string"):
        validate_table(EVALUATIONS_SCHEMA, wrong)
    nulls = table.set_column(
        table.schema.get_field_index("method"),
        pa.field("method", pa.string()),
        pa.array([None], pa.string()),
    )
    with pytest.raises(ResultsError, match="field 'method' has 1 null"):
        validate_table(EVALUATIONS_SCHEMA, nulls)
    with pytest.raises(ResultsError, match="unknown field 'extra'"):
        validate_table(EVALUATIONS_SCHEMA, table.append_column("extra", pa.array([1])))
