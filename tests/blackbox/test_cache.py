"""The response cache under concurrent access."""

from __future__ import annotations

import pytest


def test_a_statement_refused_as_locked_is_retried(tmp_path):
    """SQLite answers "database is locked" at once, without waiting, where waiting could
    deadlock; several worker processes opening one cache hit it. Such a statement is retried."""
    import sqlite3
    import threading

    from izero.blackbox.cache import _execute

    path = tmp_path / "db.sqlite"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("INSERT INTO t VALUES (1)")
    threading.Timer(0.3, holder.execute, args=("COMMIT",)).start()
    _execute(other, "INSERT INTO t VALUES (2)")
    assert other.execute("SELECT x FROM t").fetchall() == [(2,)]
