"""The store: hive-partitioned Parquet on local paths and pyarrow.fs URIs, append-safe."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from izero.errors import ResultsError
from izero.results import EVALUATIONS_SCHEMA, ResultsStore
from izero.results.provenance import Provenance
from izero.results.schema import PROVENANCE_KEY, evaluations_table
from tests.results.conftest import SEEDS, SWEEP, evaluation_row, write_synthetic

REPO = Path(__file__).resolve().parents[2]


def _parquet_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file() and p.suffix == ".parquet"}


def _stores(tmp_path: Path):
    local = ResultsStore(tmp_path / "a")
    uri = ResultsStore(f"file://{tmp_path}/b")
    sub = ResultsStore(
        "c", filesystem=pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    )
    return [(local, tmp_path / "a"), (uri, tmp_path / "b"), (sub, tmp_path / "c")]


def test_local_uri_and_subtree_stores_write_the_same_hive_layout(tmp_path):
    for store, root in _stores(tmp_path):
        syn = write_synthetic(store)
        ev = store.read_evaluations()
        assert ev.num_rows == 4 * len(SEEDS) * 6
        assert ev.schema.equals(EVALUATIONS_SCHEMA)
        assert store.read_summaries().num_rows == 4 * len(SEEDS)
        assert store.read_calls().num_rows == syn.n_calls
        # Plain hive layout on disk, task folders, provenance beside the data.
        assert {p.name for p in (root / "evaluations").iterdir()} == {"task=antonyms", "task=sum"}
        assert (root / "provenance.json").is_file() and (root / "_FINISHED").is_file()
        files = _parquet_files(root / "evaluations")
        assert len(files) == 4 * len(SEEDS) * 2  # one file per append and task
        assert all(p.name.startswith("part-") for p in files)
        # Provenance and field docs embedded in every file.
        schema = pq.read_schema(next(iter(files)))
        prov = Provenance.from_json(schema.metadata[PROVENANCE_KEY])
        assert prov.sweep == SWEEP and prov.config["blackbox"]["api_key"] == "***"
        assert b"doc" in schema.field("instruction").metadata
        assert store.read_provenance() == prov


def test_readable_by_pandas_and_pyarrow_dataset(synthetic):
    root = Path(synthetic.store.root)
    df = pd.read_parquet(root / "evaluations")
    assert len(df) == synthetic.store.read_evaluations().num_rows
    assert set(df["task"].astype(str)) == {"antonyms", "sum"}
    sub = df[(df["task"].astype(str) == "sum") & (df["method"] == "random") & (df["seed"] == 1)]
    assert sorted(sub["eval_index"]) == list(range(6))
    assert sub["dev_score"].max() == pytest.approx(0.7)
    dataset = ds.dataset(root / "summaries", format="parquet", partitioning="hive")
    tbl = dataset.to_table(filter=ds.field("task") == "sum")
    assert tbl.num_rows == 6
    assert pd.read_parquet(root / "calls")["cached"].sum() > 0


def test_filters_columns_and_sorting(synthetic):
    store = synthetic.store
    t = store.read_evaluations(tasks=["sum"], methods=["random"], seeds=[0, 2])
    assert set(t.column("task").to_pylist()) == {"sum"}
    assert set(t.column("seed").to_pylist()) == {0, 2}
    assert t.column("eval_index").to_pylist() == list(range(6)) * 2
    t = store.read_evaluations(filter=ds.field("round") > 0, columns=["task", "eval_index"])
    assert t.column_names == ["task", "eval_index"]
    assert set(t.column("eval_index").to_pylist()) == {3, 4, 5}
    calls = store.read_calls()
    starts = calls.column("started_at").to_pylist()
    assert starts == sorted(starts)


def test_empty_store_reads_empty_tables(tmp_path):
    store = ResultsStore(tmp_path / "nothing")
    assert store.read_evaluations().num_rows == 0
    assert store.read_evaluations().schema.equals(EVALUATIONS_SCHEMA)
    assert store.read_summaries(tasks=["x"]).num_rows == 0
    assert store.read_provenance() is None
    assert store.list_checkpoints() == []
    assert not store.exists() and not store.is_finished()
    assert store.append_evaluations([]) == []


def test_appends_never_rewrite_files_and_accept_arrow_tables(tmp_path):
    store = ResultsStore(tmp_path / "s")
    store.append_evaluations([evaluation_row("sum", "random", 0, 0, 0.5)])
    first = _parquet_files(tmp_path / "s")
    contents = {p: p.read_bytes() for p in first}
    mtimes = {p: p.stat().st_mtime_ns for p in first}
    table = evaluations_table([evaluation_row("sum", "random", 0, 1, 0.6)])
    store.append_evaluations(table)
    after = _parquet_files(tmp_path / "s")
    assert first < after and len(after) == 2
    assert all(p.read_bytes() == contents[p] and p.stat().st_mtime_ns == mtimes[p] for p in first)
    assert store.read_evaluations().column("eval_index").to_pylist() == [0, 1]
    with pytest.raises(ResultsError, match="unknown field"):
        store.append_evaluations(table.append_column("x", pa.array([1])))


def test_task_names_are_escaped_in_partition_folders(tmp_path):
    store = ResultsStore(tmp_path / "s")
    odd = ["a/b c", "123", "ü=x"]
    store.append_evaluations([evaluation_row(t, "random", 0, 0, 0.5) for t in odd])
    assert len(list((tmp_path / "s" / "evaluations").iterdir())) == 3
    assert sorted(store.read_evaluations().column("task").to_pylist()) == sorted(odd)
    assert store.read_evaluations(tasks=["123"]).num_rows == 1


def test_crash_mid_write_leaves_no_visible_file(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "s")
    store.append_evaluations([evaluation_row("sum", "random", 0, 0, 0.5)])
    # A crashed writer's leftover: a partial temp file is invisible to every reader.
    folder = tmp_path / "s" / "evaluations" / "task=sum"
    (folder / ".tmp-deadbeef-part-x.parquet").write_bytes(b"PAR1 partial garbage")

    moved = []

    def boom(src, dest):
        moved.append((src, dest))
        raise OSError("disk vanished")

    monkeypatch.setattr(store, "fs", _FailingMove(store.fs, boom))
    with pytest.raises(OSError, match="disk vanished"):
        store.append_evaluations([evaluation_row("sum", "random", 0, 1, 0.6)])
    monkeypatch.undo()
    [(src, dest)] = moved
    assert Path(src).name.startswith(".tmp-") and not src.endswith(".parquet")
    assert Path(dest).name.startswith("part-") and dest.endswith(".parquet")
    assert len(list(folder.glob(".tmp-*"))) == 1  # the failed write cleaned up its temp file
    assert store.read_evaluations().num_rows == 1
    assert len(pd.read_parquet(tmp_path / "s" / "evaluations")) == 1


class _FailingMove:
    """Delegates to a real filesystem but fails on move (a crash between write and rename)."""

    def __init__(self, fs, move):
        self._fs = fs
        self.move = move

    def __getattr__(self, name):
        return getattr(self._fs, name)


def test_concurrent_writers_threads_and_processes(tmp_path):
    store = ResultsStore(tmp_path / "s")

    def write(worker: int) -> None:
        for i in range(5):
            store.append_evaluations([evaluation_row("sum", f"m{worker}", 0, i, 0.1 * i)])

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, range(4)))
    code = (
        "import sys; from izero.results import ResultsStore;"
        "from tests.results.conftest import evaluation_row;"
        "s = ResultsStore(sys.argv[1]);"
        "[s.append_evaluations([evaluation_row('diff', 'p' + sys.argv[2], 0, i, 0.5)])"
        " for i in range(5)]"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "s"), str(k)], cwd=REPO)
        for k in range(2)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    ev = store.read_evaluations()
    assert ev.num_rows == 4 * 5 + 2 * 5
    keys = set(zip(*(ev.column(c).to_pylist() for c in ("method", "eval_index")), strict=True))
    assert len(keys) == 30


def test_checkpoints_are_atomic_json(tmp_path, monkeypatch):
    store = ResultsStore(f"file://{tmp_path}/s")
    assert store.read_checkpoint("sum__random__0") is None
    store.write_checkpoint("sum__random__0", {"round": 1, "z": [[0.1, 0.2]]})
    store.write_checkpoint("sum__random__0", {"round": 2, "z": [[0.3, 0.4]]})
    store.write_checkpoint("driver", {"done": ["a"]})
    assert store.read_checkpoint("sum__random__0") == {"round": 2, "z": [[0.3, 0.4]]}
    assert store.list_checkpoints() == ["driver", "sum__random__0"]
    assert [p.name for p in (tmp_path / "s" / "checkpoints").iterdir() if p.name[0] == "."] == []
    # A crash before the move keeps the previous checkpoint intact.
    monkeypatch.setattr(store, "fs", _FailingMove(store.fs, lambda s, d: 1 / 0))
    with pytest.raises(ZeroDivisionError):
        store.write_checkpoint("sum__random__0", {"round": 3})
    monkeypatch.undo()
    assert store.read_checkpoint("sum__random__0")["round"] == 2
    for bad in ("../x", "a/b", "", ".hidden"):
        with pytest.raises(ResultsError, match="checkpoint name"):
            store.write_checkpoint(bad, {})
    with pytest.raises(ResultsError, match="not JSON-serialisable"):
        store.write_checkpoint("x", {"v": float("nan")})
    (tmp_path / "s" / "checkpoints" / "broken.json").write_text("{")
    with pytest.raises(ResultsError, match="not valid JSON"):
        store.read_checkpoint("broken")


def test_ensure_new_sweep_refuses_existing_sweeps(tmp_path):
    store = ResultsStore(tmp_path / "s")
    store.ensure_new_sweep()  # nothing there: fine
    write_synthetic(store)
    assert store.is_finished()
    with pytest.raises(ResultsError) as info:
        store.ensure_new_sweep()
    assert str(info.value) == (
        f"a finished sweep exists at {tmp_path / 's'}; use --resume to continue or "
        "--overwrite to replace"
    )
    store.ensure_new_sweep(overwrite=True)
    assert not store.exists() and store.read_evaluations().num_rows == 0
    store.write_checkpoint("driver", {"round": 0})
    with pytest.raises(ResultsError, match="an unfinished sweep exists"):
        store.ensure_new_sweep()
    marker = json.loads((tmp_path / "s" / "checkpoints" / "driver.json").read_text())
    assert marker == {"round": 0}


def test_finished_marker_and_bad_uris(tmp_path):
    store = ResultsStore(tmp_path / "s")
    store.mark_finished()
    assert store.is_finished() and "finished_at" in (tmp_path / "s" / "_FINISHED").read_text()
    with pytest.raises(ResultsError, match="cannot be opened"):
        ResultsStore("nosuchscheme://bucket/x")
    with pytest.raises(ResultsError, match="empty string"):
        ResultsStore("")
    with pytest.raises(ResultsError, match="unknown results table"):
        store.dataset("nope")


def _rows(store: ResultsStore) -> dict[str, list[dict]]:
    return {
        "evaluations": store.read_evaluations().to_pylist(),
        "summaries": store.read_summaries().to_pylist(),
        "calls": store.read_calls().to_pylist(),
    }


@pytest.mark.parametrize("kind", ["local", "subtree"])
def test_compact_merges_each_tasks_files_into_one(tmp_path, kind):
    store, root = {s[1].name: s for s in _stores(tmp_path)}["a" if kind == "local" else "c"]
    write_synthetic(store)
    before = _rows(store)
    n_files = len(_parquet_files(root / "evaluations"))
    report = store.compact()
    assert report["evaluations"] == (n_files, 2)
    assert {p.parent.name for p in _parquet_files(root / "evaluations")} == {
        "task=antonyms",
        "task=sum",
    }
    assert all(n_after == 2 for _, n_after in report.values())
    assert _rows(store) == before  # every row once, same values
    # plain readers agree, and the merged files keep the provenance and field docs
    assert len(pd.read_parquet(root / "evaluations")) == len(before["evaluations"])
    schema = pq.read_schema(next(iter(_parquet_files(root / "calls"))))
    assert PROVENANCE_KEY in schema.metadata and b"doc" in schema.field("status").metadata
    # appends after a compaction go on as before; compacting again merges them in
    store.append_evaluations([evaluation_row("sum", "random", 9, 0, 0.5)])
    assert store.compact(["evaluations"]) == {"evaluations": (3, 2)}
    assert len(store.read_evaluations().to_pylist()) == len(before["evaluations"]) + 1
    assert store.compact() == {name: (2, 2) for name in before}  # nothing left to do


class _CrashOn:
    """Delegates to a real filesystem but raises on the ``n``-th call of ``method``."""

    def __init__(self, fs, method: str, n: int):
        self._fs, self._method, self._left = fs, method, n

    def __getattr__(self, name):
        real = getattr(self._fs, name)
        if name != self._method:
            return real

        def call(*args, **kwargs):
            self._left -= 1
            if self._left == 0:
                raise OSError("killed")
            return real(*args, **kwargs)

        return call


@pytest.mark.parametrize(
    ("method", "n"),
    [
        ("delete_file", 1),  # merged file written under its hidden name, nothing deleted yet
        ("delete_file", 3),  # two of the replaced files deleted
        ("move", 2),  # all replaced files deleted, merged file not yet in place
    ],
)
def test_compaction_killed_midway_loses_and_repeats_nothing(tmp_path, monkeypatch, method, n):
    store = ResultsStore(tmp_path / "s")
    for i in range(5):
        store.append_evaluations([evaluation_row("sum", "random", 0, i, 0.1 * i)])
    before = store.read_evaluations().to_pylist()
    monkeypatch.setattr(store, "fs", _CrashOn(store.fs, method, n))
    with pytest.raises(OSError, match="killed"):
        store.compact(["evaluations"])
    monkeypatch.undo()
    folder = tmp_path / "s" / "evaluations" / "task=sum"
    assert list(folder.glob(".compacting-*.parquet"))  # the merged file, not yet in place
    # readers see every row exactly once meanwhile
    assert store.read_evaluations().to_pylist() == before
    # the next compaction finishes the job
    assert store.compact(["evaluations"]) == {"evaluations": (1, 1)}
    assert not list(folder.glob(".*")) and len(list(folder.glob("part-*.parquet"))) == 1
    assert store.read_evaluations().to_pylist() == before


def test_calls_written_before_purpose_and_cost_columns_stay_readable(tmp_path):
    """Results of izero <= 0.2 have no ``purpose``/``cost_usd`` in their calls: they read as
    null beside new rows, and compaction merges old and new parts."""
    import datetime as dt

    from izero.results.schema import CALLS_SCHEMA

    store = ResultsStore(tmp_path / "s")
    t0 = dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    row = {
        "sweep": "s",
        "task": "sum",
        "method": "random",
        "seed": 0,
        "started_at": t0,
        "finished_at": t0,
        "status": "ok",
        "attempts": 1,
        "prompt_tokens": 10,
        "completion_tokens": 2,
        "cached": False,
    }
    old_schema = pa.schema([f for f in CALLS_SCHEMA if f.name not in ("purpose", "cost_usd")])
    old = pa.Table.from_pylist([row], schema=old_schema).drop_columns(["task"])
    folder = tmp_path / "s" / "calls" / "task=sum"
    folder.mkdir(parents=True)
    pq.write_table(old, folder / "part-old.parquet")
    store.append_calls([{**row, "purpose": "propose", "cost_usd": 0.5}])
    for _ in range(2):  # before and after compaction
        calls = store.read_calls().to_pylist()
        pairs = sorted(((c["purpose"], c["cost_usd"]) for c in calls), key=lambda p: p[0] or "")
        assert pairs == [(None, None), ("propose", 0.5)]
        store.compact(["calls"])
    assert len(list(folder.glob("*.parquet"))) == 1
