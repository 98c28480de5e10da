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
        self._conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, text TEXT NOT NULL, "
            "prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, "
            "model TEXT NOT NULL, created REAL NOT NULL)"
        )

    def get(self, key: str) -> CachedAnswer | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, prompt_tokens, completion_tokens FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else CachedAnswer(row[0], int(row[1]), int(row[2]))

    def put(self, key: str, answer: CachedAnswer, *, model: str) -> None:
        with self._lock:
            self._conn.execute(
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

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()
