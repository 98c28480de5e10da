"""What the recorder tells a tracker: the rows it wrote, and the rows a resumed sweep found."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class RowListener(Protocol):
    """Gets the rows of a sweep as the recorder writes them. Every method must return at once
    (queue the work) and never raise: the sweep does not wait for a listener."""

    def on_rows(self, rows: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]]) -> None:
        """New evaluation rows (one round of one run, usually) and run summaries, written."""

    def on_existing(
        self, rows: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]]
    ) -> None:
        """Rows a resumed sweep found in its results (already logged by the earlier attempt)."""

    def close(self) -> None:
        """The sweep ended: finish what is queued (within a bounded time) and stop."""
