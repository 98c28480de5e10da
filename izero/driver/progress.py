"""Progress of a sweep: counters the loop updates and a line a person can read."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from izero.driver.plan import RunKey


@dataclass
class Progress:
    """Counters of a running sweep.

    ``expected_evaluations`` is the total number of instructions the sweep will evaluate
    (all runs, all rounds); the ETA extrapolates from the share done so far.
    """

    total_runs: int
    expected_evaluations: int
    started: float = field(default_factory=time.time)
    runs_done: int = 0
    evaluations: int = 0
    generated_count: int = 0
    calls: int = 0
    cache_hits: int = 0
    failed_calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    best: dict[str, float] = field(default_factory=dict)
    outage: str = ""
    """The endpoint's outage while it lasts (``HealthView.line()``), else ``""``."""

    def generated(self, n: int) -> None:
        self.generated_count += n

    def scored(self, result: Any) -> None:
        """Count one scoring result (a ``ScoreResult`` of the black-box pool)."""
        self.calls += int(result.calls)
        self.cache_hits += int(result.cache_hits)
        self.failed_calls += int(result.n_failed)
        self.tokens += int(result.prompt_tokens) + int(result.completion_tokens)
        self.cost += float(result.cost)

    def round_done(self, key: RunKey, rnd: int, n: int, best: Any) -> None:
        self.evaluations += n
        if best is not None and best.dev_score is not None:
            label = f"{key.task}/{key.method}"
            self.best[label] = max(self.best.get(label, float("-inf")), best.dev_score)

    def run_finished(self, key: RunKey, best_dev: float | None) -> None:
        self.runs_done += 1
        if best_dev is not None:
            label = f"{key.task}/{key.method}"
            self.best[label] = max(self.best.get(label, float("-inf")), best_dev)

    def eta_s(self) -> float | None:
        """Seconds left, extrapolated from the evaluations done so far (None before any)."""
        if self.evaluations == 0 or self.expected_evaluations == 0:
            return None
        done = min(1.0, self.evaluations / self.expected_evaluations)
        elapsed = time.time() - self.started
        return elapsed * (1 - done) / done

    def line(self) -> str:
        """One status line: runs, evaluations, calls, tokens, cost, ETA; during an endpoint
        outage, the outage first (the ETA is then unknown)."""
        eta = self.eta_s()
        eta_txt = "?" if eta is None or self.outage else _duration(eta)
        prefix = f"{self.outage} | " if self.outage else ""
        return prefix + (
            f"runs {self.runs_done}/{self.total_runs} | evals {self.evaluations}/"
            f"{self.expected_evaluations} | calls {self.calls} (cached {self.cache_hits}, "
            f"failed {self.failed_calls}) | tokens {self.tokens} | cost ${self.cost:.4f} | "
            f"elapsed {_duration(time.time() - self.started)} | ETA {eta_txt}"
        )

    def best_line(self, limit: int = 6) -> str:
        """The best dev score so far per task and method (first ``limit``)."""
        items = sorted(self.best.items())[:limit]
        more = "" if len(self.best) <= limit else f" (+{len(self.best) - limit} more)"
        return "best dev: " + ", ".join(f"{k} {v:.2f}" for k, v in items) + more


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"
