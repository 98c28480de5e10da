"""A response cache keyed on the exact request, persisted with the run's results.

SQLite in WAL mode: several worker processes read and write the same file safely; a resumed
or repeated run finds every answer it already paid for. The key is the SHA-256 of the
canonical JSON of (base URL, model, sampling parameters, messages); the key never includes the
API key.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_FILE_NAME = "blackbox_cache.sqlite"
"""File name of the cache inside the directory the driver passes (the run's output dir)."""
BUSY_TIMEOUT_MS = 30_000
LOCKED_RETRY_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0)
"""Waits before retrying a statement SQLite refused with "database is locked" at once.

SQLite skips the busy handler where waiting could deadlock (a reader upgrading to a writer,
e.g. ``CREATE TABLE IF NOT EXISTS`` or an insert while another process is writing, or WAL
recovery), so ``busy_timeout`` alone does not cover several processes opening one cache."""


def _execute(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
    """``conn.execute`` that retries a statement refused as locked, a bounded number of times."""
    for wait in (*LOCKED_RETRY_S, None):
        try:
            return conn.execute(sql, params)
        except sqlite3.OperationalError as err:
            if wait is None or ("locked" not in str(err) and "busy" not in str(err)):
                raise
            time.sleep(wait)
    raise AssertionError("unreachable")


def request_key(
    *, base_url: str, model: str, params: Mapping[str, Any], messages: Sequence[Mapping[str, str]]
) -> str:
    """Hex SHA-256 identifying one exact request."""
    blob = json.dumps(
        {"base_url": base_url, "model": model, "params": dict(params), "messages": list(messages)},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class CachedAnswer:
    """A stored answer: its text and the usage that was paid for it."""

    text: str
    prompt_tokens: int
    completion_tokens: int


class ResponseCache:
    """The persistent cache in ``directory/blackbox_cache.sqlite`` (created if missing)."""

    def __init__(self, directory: str | Path):
        self.path = Path(directory) / CACHE_FILE_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.path,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
            isolation_level=None,
        )
        _execute(self._conn, f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        _execute(self._conn, "PRAGMA journal_mode=WAL")
        _execute(self._conn, "PRAGMA synchronous=NORMAL")
        _execute(
            self._conn,
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
            "model TEXT NOT NULL, created REAL NOT NULL)",
        )

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = _execute(
                self._conn,
                "SELECT text, prompt_tokens, completion_tokens FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else CachedAnswer(row[0], int(row[1]), int(row[2]))

    def put(self, key: str, answer: CachedAnswer, *, model: str) -> None:
        with self._lock:
            _execute(
                self._conn,
                "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    answer.text,
                    answer.prompt_tokens,
                    answer.completion_tokens,
                    model,
                    time.time(),
                ),
            )

    def entries_after(self, rowid: int) -> tuple[list[tuple], int]:
        """Entries stored after ``rowid`` as ``(key, text, prompt_tokens, completion_tokens,
        model, created)`` tuples, and the last rowid (to copy the cache elsewhere in steps)."""
        with self._lock:
            rows = _execute(
                self._conn,
                "SELECT rowid, key, text, prompt_tokens, completion_tokens, model, created "
                "FROM responses WHERE rowid > ? ORDER BY rowid",
                (rowid,),
            ).fetchall()
        return [tuple(r[1:]) for r in rows], (rows[-1][0] if rows else rowid)

    def put_entries(self, entries: Sequence[tuple]) -> int:
        """Add entries as :meth:`entries_after` returns them (known keys are kept); returns
        how many were new."""
        with self._lock:
            before = self._conn.total_changes
            _execute(self._conn, "BEGIN IMMEDIATE")  # the write lock first, with retries
            try:
                self._conn.executemany(
                    "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?)", entries
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            return self._conn.total_changes - before

    def last_rowid(self) -> int:
        with self._lock:
            row = _execute(self._conn, "SELECT MAX(rowid) FROM responses").fetchone()
        return int(row[0] or 0)

    def __len__(self) -> int:
        with self._lock:
            return int(_execute(self._conn, "SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
