"""Task files: CSV, JSON lines and Parquet read with pyarrow, splits, and one line per bad file."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from izero.config import TaskFileConfig
from izero.errors import TaskDataError
from izero.tasks import make_splits
from izero.tasks.files import read_task_file
from izero.tasks.metrics import MetricSpec
from izero.tasks.selection import load_tasks

# (country, accepted capitals, split): 7 demo, 12 dev, 6 test rows
ROWS = [
    (f"Country {i}", [f"Capital {i}"] + ([f"Old capital {i}"] if i % 4 == 0 else []), split)
    for i, split in enumerate(["demo"] * 7 + ["dev"] * 12 + ["test"] * 6)
]
ROWS[3] = ('Switzerland, "the Confederation"', ["Bern", "Berne"], "demo")  # quoting survives


def write_csv(path: Path, rows=ROWS, *, split=True) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["country", "capital", *(["split"] if split else [])])
        for country, capitals, s in rows:
            w.writerow([country, "|".join(capitals), *([s] if split else [])])
    return path


def write_jsonl(path: Path, rows=ROWS, *, split=True) -> Path:
    with path.open("w", encoding="utf-8") as f:
        for country, capitals, s in rows:
            row = {"country": country, "capital": capitals}
            if split:
                row["split"] = s
            f.write(json.dumps(row) + "\n")
    return path


def write_parquet(path: Path, rows=ROWS, *, split=True) -> Path:
    columns = {"country": [r[0] for r in rows], "capital": [r[1] for r in rows]}
    if split:
        columns["split"] = [r[2] for r in rows]
    pq.write_table(pa.table(columns), path)
    return path


def read(path: Path, **kw):
    options = {"input": "country", "output": "capital", "split": "split", **kw}
    if path.suffix == ".csv":
        options.setdefault("separator", "|")
    return read_task_file(name="capitals", path=str(path), **options)


def test_csv_jsonl_and_parquet_with_the_same_rows_give_the_same_task(tmp_path):
    tasks = [
        read(write_csv(tmp_path / "c.csv")),
        read(write_jsonl(tmp_path / "c.jsonl")),
        read(write_parquet(tmp_path / "c.parquet")),
    ]
    first = tasks[0]
    assert first.source == "table" and first.metric == "exact_match"
    assert [len(first.demo_pool), len(first.induce), len(first.execute)] == [7, 12, 6]
    assert first.demo_pool[3].input == 'Switzerland, "the Confederation"'
    assert first.demo_pool[3].answers == ("Bern", "Berne")  # a list of accepted answers
    assert first.demo_pool[0].answers == ("Capital 0", "Old capital 0")
    assert first.demo_pool[0].output == "Capital 0"
    for other in tasks[1:]:
        assert (other.demo_pool, other.induce, other.execute) == (
            first.demo_pool,
            first.induce,
            first.execute,
        )
        assert other.digest != first.digest  # the hash is of the file's bytes
    # a file URI reads the same as a path
    by_uri = read_task_file(
        name="capitals",
        path=(tmp_path / "c.parquet").as_uri(),
        input="country",
        output="capital",
        split="split",
    )
    assert by_uri.induce == first.induce and by_uri.digest == tasks[2].digest


def test_the_split_column_is_honoured_and_drawn_by_seed(tmp_path):
    task = read(write_jsonl(tmp_path / "c.jsonl"))
    splits = make_splits(task, seed=3, n_demos=5, n_dev=10, n_test=4)
    assert len(splits.demos) == 5 and len(splits.dev) == 10 and len(splits.test) == 4
    assert set(splits.demos) <= set(task.demo_pool)
    assert set(splits.dev) <= set(task.induce)
    assert set(splits.test) <= set(task.execute)
    assert make_splits(task, seed=3, n_demos=5, n_dev=10, n_test=4) == splits
    other = make_splits(task, seed=4, n_demos=5, n_dev=10, n_test=4)
    assert (other.demos, other.dev) != (splits.demos, splits.dev)
    # more test examples asked than the file marks: all of them
    assert len(make_splits(task, seed=3, n_demos=5, n_dev=10, n_test=100).test) == 6


def test_without_a_split_column_rows_are_split_by_seed(tmp_path):
    task = read(write_csv(tmp_path / "c.csv", split=False), split=None)
    assert task.demo_pool is None and len(task.induce) == len(ROWS) and task.execute == ()
    splits = make_splits(task, seed=0, n_demos=5, n_dev=10, n_test=100)
    assert (len(splits.demos), len(splits.dev), len(splits.test)) == (5, 10, len(ROWS) - 15)
    parts = [set(splits.demos), set(splits.dev), set(splits.test)]
    assert sum(map(len, parts)) == len(set().union(*parts)) == len(ROWS)  # disjoint, all used
    assert make_splits(task, seed=0, n_demos=5, n_dev=10, n_test=100) == splits
    assert make_splits(task, seed=1, n_demos=5, n_dev=10, n_test=100).dev != splits.dev


def test_numbers_stay_text_and_answers_may_be_numbers(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text("q,a\n007,042\n1.50,3\n")
    task = read_task_file(name="n", path=str(path), input="q", output="a")
    assert [(e.input, e.answers) for e in task.induce] == [("007", ("042",)), ("1.50", ("3",))]
    jl = tmp_path / "n.jsonl"
    jl.write_text('{"q": "2+2", "a": 4}\n{"q": "half", "a": 0.5}\n')
    task = read_task_file(name="n", path=str(jl), input="q", output="a")
    assert [e.answers for e in task.induce] == [("4",), ("0.5",)]
    jl.write_text('{"q": "yes?", "a": true}\n')
    task = read_task_file(name="n", path=str(jl), input="q", output="a")
    assert task.induce[0].answers == ("true",)
    jl.write_text('{"q": "half", "a": ["0.5", "1/2"]}\n{"q": "2+2", "a": "4"}\n')
    msg = _error(lambda: read_task_file(name="n", path=str(jl), input="q", output="a"))
    assert "row 2, column 'a'" in msg and "all lists" in msg


def test_metric_and_extraction_travel_with_the_task(tmp_path):
    task = read(write_csv(tmp_path / "c.csv"), metric="numeric", extract="last_number")
    assert task.metric == MetricSpec("numeric", "last_number")
    assert make_splits(task, seed=0, n_demos=5, n_dev=5, n_test=5).metric == task.metric
    hash(task.metric)  # the driver uses it in a dict key


def _error(fn) -> str:
    with pytest.raises(TaskDataError) as info:
        fn()
    msg = str(info.value)
    assert "\n" not in msg and "Fix:" in msg
    return msg


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", ["is empty"]),
        ("country,capital\n", ["has no rows", "country, capital"]),
        ("nation,capital\nFrance,Paris\n", ["no column 'country'", "columns found: nation"]),
        ("country,capital\nFrance,\n", ["row 1", "'capital'", "no answer"]),
        ("country,capital\nFrance,Paris\n ,Rome\n", ["row 2", "'country'", "input is empty"]),
    ],
)
def test_bad_csv_files_are_refused_with_one_line(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    msg = _error(
        lambda: read_task_file(name="t", path=str(path), input="country", output="capital")
    )
    assert str(path) in msg
    for part in expected:
        assert part in msg, msg


def test_bad_split_values_and_formats_are_refused(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text('{"x": "a", "y": "b", "s": "dev"}\n{"x": "c", "y": "d", "s": "train"}\n')
    msg = _error(lambda: read_task_file(name="t", path=str(path), input="x", output="y", split="s"))
    assert "row 2" in msg and "'train'" in msg and "demo, dev, test" in msg
    path.write_text('{"x": "a", "y": "b"}\n{"x": "c", oops}\n')
    msg = _error(lambda: read_task_file(name="t", path=str(path), input="x", output="y"))
    assert "not valid JSON lines" in msg
    other = tmp_path / "t.txt"
    other.write_text("x,y\na,b\n")
    msg = _error(lambda: read_task_file(name="t", path=str(other), input="x", output="y"))
    assert "format" in msg
    task = read_task_file(name="t", path=str(other), input="x", output="y", format="csv")
    assert task.induce[0].answers == ("b",)


@pytest.mark.parametrize(
    "path",
    [
        "/nonexistent/dir/tasks.csv",
        "file:///nonexistent/dir/tasks.parquet",
        "nosuchscheme://bucket/tasks.csv",
    ],
)
def test_unreadable_paths_and_uris_are_refused(path):
    msg = _error(lambda: read_task_file(name="t", path=path, input="x", output="y"))
    assert path in msg


def test_too_few_rows_are_refused_with_the_counts(tmp_path):
    path = write_csv(tmp_path / "small.csv", ROWS[:12], split=False)
    entry = TaskFileConfig(
        name="small", path=str(path), input="country", output="capital", separator="|"
    )
    msg = _error(lambda: load_tasks([entry], n_demos=5, n_dev=10, n_test=20))
    assert "12 rows" in msg and "16 are needed" in msg and "5 demos + 10 dev" in msg
    load_tasks([entry], n_demos=5, n_dev=6, n_test=20)  # 5 + 6 + 1 fit
    split_path = write_csv(tmp_path / "split.csv")
    entry = TaskFileConfig(
        name="split", path=str(split_path), input="country", output="capital", split="split"
    )
    msg = _error(lambda: load_tasks([entry], n_demos=8, n_dev=5, n_test=5))
    assert "7 rows with split 'demo'; 8 are needed" in msg


def test_duplicate_names_and_changed_pinned_files_are_refused(tmp_path):
    path = write_csv(tmp_path / "c.csv")
    entry = TaskFileConfig(name="sum", path=str(path), input="country", output="capital")
    msg = _error(lambda: load_tasks(["sum", entry], n_demos=5, n_dev=5, n_test=5))
    assert "'sum' appears twice" in msg
    pinned = TaskFileConfig(
        name="c", path=str(path), input="country", output="capital", sha256="0" * 64
    )
    msg = _error(lambda: load_tasks([pinned], n_demos=5, n_dev=5, n_test=5))
    assert "changed" in msg and str(path) in msg
