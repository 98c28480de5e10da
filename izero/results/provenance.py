"""Provenance of a sweep: config, seeds, package versions, git commit, host, time.

Stored as ``provenance.json`` beside the data and embedded in every Parquet file's schema
metadata (key :data:`izero.results.schema.PROVENANCE_KEY`). Secrets in the config (API keys,
passwords, tokens used for authentication) are replaced by :data:`REDACTED` before anything
is stored.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib.metadata
import json
import logging
import math
import platform
import re
import socket
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from izero.errors import ResultsError

logger = logging.getLogger(__name__)

#: Distributions whose versions are recorded (the ``python`` entry is added separately).
TRACKED_PACKAGES = (
    "izero",
    "torch",
    "ray",
    "transformers",
    "botorch",
    "gpytorch",
    "aiohttp",
    "pyarrow",
)
#: Replacement for secret config values.
REDACTED = "***"
#: Config keys whose values are secrets (matched case-insensitively against the whole key).
SECRET_KEY_PATTERN = re.compile(
    r"(.*_)?(api_?key|secret(_key)?|password|passwd|authorization|auth_token|access_key|"
    r"access_token|bearer_token|private_key|credentials?)",
    re.IGNORECASE,
)
#: Seconds allowed for ``git rev-parse`` before giving up (the commit is then None).
GIT_TIMEOUT_S = 5.0
#: Provenance format version.
PROVENANCE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class Provenance:
    """Where a sweep's results came from.

    Attributes:
        config: the sweep configuration as JSON-compatible data, secrets redacted.
        seeds: the seeds of the sweep.
        versions: package name -> version (None when not installed), plus ``python``.
        git_commit: commit of the izero checkout the sweep ran from; None outside git.
        hostname: host that created the sweep.
        created_at: ISO-8601 UTC time of creation.
        sweep: name of the sweep (optional).
    """

    config: Mapping[str, Any]
    seeds: tuple[int, ...]
    versions: Mapping[str, str | None]
    git_commit: str | None
    hostname: str
    created_at: str
    sweep: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.config, Mapping):
            raise ResultsError(
                f"provenance field 'config': expected a mapping, got {type(self.config).__name__}"
            )
        seeds = tuple(self.seeds)
        for s in seeds:
            if isinstance(s, bool) or not isinstance(s, int):
                raise ResultsError(f"provenance field 'seeds': expected ints, got {s!r}")
        object.__setattr__(self, "seeds", seeds)

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dict (the content of ``provenance.json``)."""
        return {
            "provenance_version": PROVENANCE_VERSION,
            "sweep": self.sweep,
            "config": to_jsonable(self.config),
            "seeds": list(self.seeds),
            "versions": dict(self.versions),
            "git_commit": self.git_commit,
            "hostname": self.hostname,
            "created_at": self.created_at,
        }

    def to_json(self) -> str:
        """Stable, pretty JSON."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`.

        Raises:
            ResultsError: a required key is missing.
        """
        missing = [
            k for k in ("config", "seeds", "versions", "hostname", "created_at") if k not in data
        ]
        if missing:
            raise ResultsError(
                f"provenance: missing key '{missing[0]}'; the provenance.json file is damaged"
            )
        return cls(
            config=data["config"],
            seeds=tuple(data["seeds"]),
            versions=data["versions"],
            git_commit=data.get("git_commit"),
            hostname=data["hostname"],
            created_at=data["created_at"],
            sweep=data.get("sweep"),
        )

    @classmethod
    def from_json(cls, text: str | bytes) -> Provenance:
        """Parse :meth:`to_json` output.

        Raises:
            ResultsError: the text is not valid provenance JSON.
        """
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ResultsError(f"provenance: not valid JSON ({exc})") from exc
        if not isinstance(data, Mapping):
            raise ResultsError("provenance: expected a JSON object")
        return cls.from_dict(data)


def redact(data: Any) -> Any:
    """Copy of JSON-like ``data`` with the values of secret keys replaced by :data:`REDACTED`."""
    if isinstance(data, Mapping):
        out = {}
        for key, value in data.items():
            if isinstance(key, str) and SECRET_KEY_PATTERN.fullmatch(key) and value is not None:
                out[key] = REDACTED
            else:
                out[key] = redact(value)
        return out
    if isinstance(data, list):
        return [redact(v) for v in data]
    return data


def to_jsonable(value: Any) -> Any:
    """Turn a config (dataclasses, mappings, sequences, paths, enums) into JSON data.

    Secret keys are redacted (see :func:`redact`); non-finite floats become None.

    Raises:
        ResultsError: a value has no JSON form.
    """
    return redact(_jsonable(value, "config"))


def _jsonable(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, enum.Enum):
        return _jsonable(value.value, where)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _jsonable(getattr(value, f.name), f"{where}.{f.name}")
            for f in dataclasses.fields(value)
        }
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (Sequence, set, frozenset)) and not isinstance(value, (bytes, bytearray)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [_jsonable(v, f"{where}[{i}]") for i, v in enumerate(items)]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return _jsonable(value.item(), where)
    raise ResultsError(
        f"provenance: '{where}' of type {type(value).__name__} has no JSON form; "
        "store plain numbers, strings, lists, dicts or dataclasses in the config"
    )


def package_versions(packages: Sequence[str] = TRACKED_PACKAGES) -> dict[str, str | None]:
    """Installed versions of ``packages`` (None when missing) plus ``python``."""
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    if out.get("izero") is None:
        # izero runs from a checkout (not pip-installed) in tests and Ray jobs.
        import izero

        out["izero"] = getattr(izero, "__version__", None)
    out["python"] = platform.python_version()
    return out


def git_commit(path: str | Path | None = None) -> str | None:
    """Commit hash of the git checkout holding ``path`` (default: the izero package).

    Returns None outside a git checkout, without git, or on any git failure; never raises.
    """
    if path is None:
        import izero

        path = Path(izero.__file__).resolve().parent
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=str(path),
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        logger.debug("no git commit for %s: %s", path, exc)
        return None
    commit = proc.stdout.strip()
    if proc.returncode != 0 or not re.fullmatch(r"[0-9a-f]{40,64}", commit):
        return None
    return commit


def collect_provenance(
    *,
    config: Any,
    seeds: Sequence[int],
    sweep: str | None = None,
    repo_path: str | Path | None = None,
    now: dt.datetime | None = None,
) -> Provenance:
    """Provenance of a sweep starting now.

    Args:
        config: the sweep config (dataclass or mapping); secrets are redacted.
        seeds: the sweep's seeds.
        sweep: the sweep's name.
        repo_path: where to look for the git commit; None = the izero package's folder.
        now: creation time (timezone-aware); None = the current UTC time.
    """
    data = to_jsonable(config)
    if not isinstance(data, dict):
        raise ResultsError(
            f"provenance: config must be a mapping or dataclass, got {type(config).__name__}"
        )
    created = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    return Provenance(
        config=data,
        seeds=tuple(int(s) for s in seeds),
        versions=package_versions(),
        git_commit=git_commit(repo_path),
        hostname=socket.gethostname(),
        created_at=created.isoformat(),
        sweep=sweep,
    )
