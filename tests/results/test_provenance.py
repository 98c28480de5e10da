"""Provenance: versions, git commit (None outside git), secrets redacted, JSON round trip."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import subprocess
from pathlib import Path

import pytest

from izero.errors import ResultsError
from izero.results.provenance import (
    REDACTED,
    TRACKED_PACKAGES,
    Provenance,
    collect_provenance,
    git_commit,
    to_jsonable,
)

REPO = Path(__file__).resolve().parents[2]


@dataclasses.dataclass(frozen=True)
class _Endpoint:
    base_url: str
    api_key: str | None
    max_tokens: int
    rpm: float


@dataclasses.dataclass(frozen=True)
class _Config:
    blackbox: _Endpoint
    out: Path
    seeds: tuple[int, ...]


def test_collect_redacts_secrets_and_keeps_the_rest(tmp_path):
    cfg = _Config(
        blackbox=_Endpoint("http://127.0.0.1:1/v1", "sk-verysecret", 64, 100.0),
        out=tmp_path,
        seeds=(0, 1),
    )
    now = dt.datetime(2026, 5, 1, 10, 0, tzinfo=dt.timezone.utc)
    prov = collect_provenance(config=cfg, seeds=[0, 1], sweep="s", now=now)
    text = prov.to_json()
    assert "sk-verysecret" not in text
    assert prov.config["blackbox"]["api_key"] == REDACTED
    assert prov.config["blackbox"]["max_tokens"] == 64
    assert prov.config["blackbox"]["rpm"] == 100.0
    assert prov.config["out"] == str(tmp_path)
    assert prov.config["seeds"] == [0, 1]
    assert prov.created_at == "2026-05-01T10:00:00+00:00"
    assert set(TRACKED_PACKAGES) | {"python"} == set(prov.versions)
    assert prov.versions["pyarrow"] and prov.versions["izero"] and prov.versions["python"]
    assert Provenance.from_json(text) == prov
    assert json.loads(text)["seeds"] == [0, 1]


def test_git_commit_inside_and_outside_a_checkout(tmp_path):
    head = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_commit(REPO) == head
    assert git_commit() == head  # default: the izero package's checkout
    assert git_commit(tmp_path) is None
    assert git_commit(tmp_path / "does-not-exist") is None
    prov = collect_provenance(config={}, seeds=[], repo_path=tmp_path)
    assert prov.git_commit is None


def test_unserialisable_config_and_bad_json_are_refused():
    with pytest.raises(ResultsError, match=r"'config.model' of type object"):
        to_jsonable({"model": object()})
    with pytest.raises(ResultsError, match="not valid JSON"):
        Provenance.from_json("{nope")
    with pytest.raises(ResultsError, match="missing key 'seeds'"):
        Provenance.from_json('{"config": {}, "versions": {}}')
    with pytest.raises(ResultsError, match="expected ints"):
        Provenance(
            config={}, seeds=("0",), versions={}, git_commit=None, hostname="h", created_at="t"
        )
