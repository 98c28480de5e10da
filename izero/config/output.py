"""The ``output`` section: where results go."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from izero.config._checks import check

# Output.
DEFAULT_OUTPUT_PATH = "runs/{name}"


@dataclass(frozen=True)
class OutputConfig:
    """Where results go: a local path or any ``pyarrow.fs`` URI (``s3://bucket/prefix``).

    ``{name}`` in ``path`` is replaced by the sweep name. ``overwrite=False`` refuses to write
    over a finished sweep (a killed one is resumed).
    """

    _SECTION: ClassVar[str] = "output."

    path: str = DEFAULT_OUTPUT_PATH
    overwrite: bool = False

    def __post_init__(self) -> None:
        ok = bool(self.path.strip())
        if ok:
            try:
                self.path.format(name="x")
            except (KeyError, IndexError, ValueError):
                ok = False
        check(
            ok,
            f"{self._SECTION}path",
            self.path,
            "a non-empty local path or URI whose only placeholder is {name}",
        )
