"""A copy of the response cache kept with the results when the cache lives elsewhere.

The cache is SQLite, so it needs a local disk: with results on object storage it sits on the
driver's disk, which a resume on another machine (a new head pod, say) does not have. Then the
sweep copies new cache entries into the results every :data:`BACKUP_INTERVAL_S` seconds and
when it stops, and a resume restores them first: a lost driver costs at most that many seconds
of answers, not every answer of the rounds it had not recorded yet.
"""

from __future__ import annotations

import logging
from pathlib import Path

from izero.blackbox.cache import ResponseCache
from izero.results import ResultsStore

logger = logging.getLogger(__name__)

BACKUP_INTERVAL_S = 60.0


class CacheBackup:
    """Copies ``cache_dir``'s response cache into ``store`` (a no-op when it lies inside the
    store's own folder, where it already travels with the results)."""

    def __init__(self, store: ResultsStore, cache_dir: Path):
        self.store = store
        self.cache_dir = Path(cache_dir)
        self.enabled = not _inside(self.cache_dir, store)
        self._cache: ResponseCache | None = None
        self._synced_rowid = 0

    def _open(self) -> ResponseCache:
        if self._cache is None:
            self._cache = ResponseCache(self.cache_dir)
        return self._cache

    def restore(self) -> int:
        """Put the copy's entries into the local cache, and local entries the copy lacks (the
        last ones before a crash on this same disk) into the copy; returns how many entries
        the local cache was missing."""
        if not self.enabled:
            return 0
        cache = self._open()
        copied = self.store.read_cache_backup()
        known = {entry[0] for entry in copied}
        local, _ = cache.entries_after(0)
        self.store.append_cache_backup([e for e in local if e[0] not in known])
        added = cache.put_entries(copied)
        self._synced_rowid = cache.last_rowid()  # all of it is in the copy now
        if added:
            logger.info("restored %d cached answers from %s", added, self.store.uri)
        return added

    def sync(self) -> int:
        """Copy the entries added since the last sync; returns how many."""
        if not self.enabled:
            return 0
        entries, last = self._open().entries_after(self._synced_rowid)
        self.store.append_cache_backup(entries)
        self._synced_rowid = last
        return len(entries)

    def close(self) -> None:
        if self._cache is not None:
            self._cache.close()
            self._cache = None


def _inside(folder: Path, store: ResultsStore) -> bool:
    root = store.local_root
    return root is not None and folder.resolve().is_relative_to(root.resolve())
