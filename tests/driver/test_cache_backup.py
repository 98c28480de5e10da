"""The response cache's copy in the results, for caches that live off the results' folder."""

from __future__ import annotations

import shutil

import pytest

from izero.blackbox.cache import CachedAnswer, ResponseCache
from izero.config import config_from_dict
from izero.driver import run_sweep
from izero.driver import sweep as sweep_module
from izero.driver.cache_backup import CacheBackup
from izero.results import ResultsStore


def _fill(cache_dir, keys):
    cache = ResponseCache(cache_dir)
    for k in keys:
        cache.put(k, CachedAnswer(f"answer {k}", 10, 2), model="m")
    cache.close()


def test_sync_copies_new_entries_once_and_restore_brings_them_back(tmp_path):
    store = ResultsStore(tmp_path / "results")
    backup = CacheBackup(store, tmp_path / "driver-disk")
    assert backup.enabled
    _fill(tmp_path / "driver-disk", ["a", "b"])
    assert backup.sync() == 2
    assert backup.sync() == 0  # nothing new, nothing written
    _fill(tmp_path / "driver-disk", ["c"])
    assert backup.sync() == 1
    backup.close()
    assert len(list((tmp_path / "results" / "blackbox_cache").glob("part-*.parquet"))) == 2
    # the driver's disk is lost; a resume elsewhere restores every answer
    shutil.rmtree(tmp_path / "driver-disk")
    again = CacheBackup(store, tmp_path / "new-disk")
    assert again.restore() == 3
    assert again.sync() == 0  # restored entries are not copied back
    again.close()
    cache = ResponseCache(tmp_path / "new-disk")
    assert cache.get("c") == CachedAnswer("answer c", 10, 2) and len(cache) == 3
    cache.close()
    # answers a crash kept from the copy (same disk, no sync after them) are copied on resume
    _fill(tmp_path / "new-disk", ["d"])
    third = CacheBackup(store, tmp_path / "new-disk")
    assert third.restore() == 0 and third.sync() == 0
    third.close()
    # compaction merges the copy's files too, keeping every entry once
    assert store.compact()["blackbox_cache"] == (3, 1)
    assert sorted(e[0] for e in store.read_cache_backup()) == ["a", "b", "c", "d"]


def test_no_copy_when_the_cache_lives_in_the_results(tmp_path):
    store = ResultsStore(tmp_path / "results")
    backup = CacheBackup(store, tmp_path / "results" / "cache")
    _fill(tmp_path / "results" / "cache", ["a"])
    assert not backup.enabled and backup.sync() == 0 and backup.restore() == 0
    assert not (tmp_path / "results" / "blackbox_cache").exists()


@pytest.mark.parametrize("restore", [True, False])
def test_a_resume_on_another_machine_pays_nothing_twice(ray_local, tmp_path, monkeypatch, restore):
    """A sweep whose cache is on the driver's disk stops (budget cap) in its first round; the
    disk is lost; the resume on a fresh disk pays only for answers it never had: exactly what
    an uninterrupted sweep pays in all. (Without the copy it would pay some twice.)"""

    def config(path, **blackbox):
        return config_from_dict(
            {
                "name": "moved",
                "tasks": ["sum"],
                "seeds": [0],
                "methods": ["instructzero"],
                "budget": {"preset": "smoke"},
                "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 12},
                "blackbox": {"backend": "simulated", "rpm": 6000, **blackbox},
                "output": {"path": str(path)},
            }
        )

    disk = {"dir": tmp_path / "disk-1"}
    monkeypatch.setattr(sweep_module, "_cache_dir", lambda config, store: disk["dir"])
    if not restore:
        monkeypatch.setattr(CacheBackup, "restore", lambda self: 0)
    full = run_sweep(config(tmp_path / "reference"))
    paid_in_full = full.progress.calls

    disk["dir"] = tmp_path / "disk-2"
    from izero.blackbox import BudgetExhaustedError

    with pytest.raises(BudgetExhaustedError):
        run_sweep(config(tmp_path / "sweep", max_calls=12))
    cache = ResponseCache(disk["dir"])
    paid_before = len(cache)
    cache.close()
    assert 0 < paid_before <= 12
    shutil.rmtree(disk["dir"])
    disk["dir"] = tmp_path / "disk-3"
    resumed = run_sweep(config(tmp_path / "sweep"), resume=True)
    if restore:
        assert paid_before + resumed.progress.calls == paid_in_full
    else:
        assert paid_before + resumed.progress.calls > paid_in_full
