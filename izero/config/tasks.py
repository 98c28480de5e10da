"""Task-file entries of ``tasks``: a user's own examples in a CSV, JSONL or Parquet file.

``tasks`` lists built-in (or data-dir) task names and mappings such as::

    tasks:
      - sum
      - name: capitals
        path: examples/file_tasks/capitals.csv   # local path or pyarrow.fs URI
        input: country                          # column names
        output: capital                         # one answer, or a list column of answers
        metric: exact_match                     # built-in metric, or module:function
        extract: null                           # last_number, regex:<pattern>, or null
        split: split                            # optional demo/dev/test column

The entry is checked when the config is built (names, metric, extraction); the file itself is
read and checked by :func:`izero.tasks.selection.load_tasks` before the sweep writes anything.
When a sweep starts, each entry's ``sha256`` is set to its file's hash in the recorded
provenance, so a resume refuses a file that changed.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from izero.config._checks import NAME_RE, check
from izero.errors import ConfigError

DEFAULT_INPUT_COLUMN = "input"
DEFAULT_OUTPUT_COLUMN = "output"
DEFAULT_FILE_METRIC = "exact_match"
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class TaskFileConfig:
    """One task read from a file.

    ``name``: the task's name (results, ``izero best --task``); ``path``: local path (relative
    to the working directory) or ``pyarrow.fs`` URI of a ``.csv``/``.tsv``/``.jsonl``/
    ``.parquet`` file; ``input``/``output``/``split``: column names; ``metric``: a built-in
    metric or a plug-in ``module:function`` (:mod:`izero.tasks.plugins`); ``extract``: answer
    extraction before the metric (``last_number``, ``regex:<pattern>``); ``separator``: splits
    a text answer cell into several accepted answers; ``annotations``: reference instructions
    (the ``manual`` baseline); ``format``: overrides the suffix; ``sha256``: the file must have
    this hash (set automatically in the provenance of a started sweep).
    """

    name: str
    path: str
    input: str = DEFAULT_INPUT_COLUMN
    output: str = DEFAULT_OUTPUT_COLUMN
    metric: str = DEFAULT_FILE_METRIC
    extract: str | None = None
    split: str | None = None
    separator: str | None = None
    annotations: tuple[str, ...] = ()
    format: Literal["csv", "tsv", "jsonl", "parquet"] | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        from izero.tasks.extract import EXTRACTIONS, check_extraction
        from izero.tasks.metrics import METRICS, MetricError, check_metric

        check(
            isinstance(self.name, str) and bool(NAME_RE.match(self.name)),
            "tasks[].name",
            self.name,
            "letters, digits, '_', '.' or '-' (it names the task's results)",
        )
        field = f"tasks.{self.name}."
        check(bool(self.path.strip()), f"{field}path", self.path, "a file path or pyarrow.fs URI")
        for option in ("input", "output"):
            value = getattr(self, option)
            check(bool(value), f"{field}{option}", value, "a column name of the file")
        check(
            self.input != self.output,
            f"{field}output",
            self.output,
            f"a column other than the input column {self.input!r}",
        )
        check(
            self.split is None
            or (bool(self.split) and self.split not in (self.input, self.output)),
            f"{field}split",
            self.split,
            "null, or a column other than the input and output columns",
        )
        check(
            self.separator is None or bool(self.separator),
            f"{field}separator",
            self.separator,
            "null or a non-empty string such as '|'",
        )
        check(
            all(isinstance(a, str) and a.strip() for a in self.annotations),
            f"{field}annotations",
            self.annotations,
            "a list of non-empty reference instructions",
        )
        check(
            self.sha256 is None or bool(_SHA256_RE.match(self.sha256)),
            f"{field}sha256",
            self.sha256,
            "null or 64 lower-case hex digits",
        )
        try:
            check_extraction(self.extract)
        except ValueError as exc:
            raise ConfigError(
                f"{field}extract",
                self.extract,
                f"null or one of {', '.join(EXTRACTIONS)}",
                str(exc).split("Fix: ")[-1],
            ) from None
        try:
            check_metric(self.metric)
        except MetricError as exc:
            reason, _, fix = str(exc).partition(". Fix: ")
            raise ConfigError(
                f"{field}metric",
                self.metric,
                f"a built-in metric ({', '.join(sorted(METRICS))}) or a plug-in module:function",
                f"{reason}; {fix}" if fix else reason,
            ) from None


def pin_task_digests(
    entries: Sequence[str | TaskFileConfig], digests: Mapping[str, str]
) -> tuple[str | TaskFileConfig, ...]:
    """``entries`` with each task file's ``sha256`` set from ``digests`` (name -> hash)."""
    return tuple(
        dataclasses.replace(e, sha256=digests[e.name])
        if isinstance(e, TaskFileConfig) and e.name in digests
        else e
        for e in entries
    )


def check_same_task_files(old_tasks: Any, new_tasks: Sequence[str | TaskFileConfig]) -> None:
    """Refuse to resume when a task file's content changed since the sweep started.

    ``old_tasks``: the ``tasks`` of the recorded provenance config (names and mappings);
    ``new_tasks``: this config's entries with their digests pinned.

    Raises:
        ConfigError: ``tasks.<name>.path`` with both hashes and the fix.
    """
    old = {
        t.get("name"): t.get("sha256")
        for t in (old_tasks or ())
        if isinstance(t, Mapping) and t.get("sha256")
    }
    for entry in new_tasks:
        if not isinstance(entry, TaskFileConfig) or entry.name not in old:
            continue
        before, now = old[entry.name], entry.sha256
        if now is not None and before != now:
            raise ConfigError(
                f"tasks.{entry.name}.path",
                entry.path,
                f"the file the sweep being resumed read (sha256 {before[:12]}...)",
                f"the file changed (sha256 now {now[:12]}...); restore it, or start a new sweep "
                "under another output.path",
            )
