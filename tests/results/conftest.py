"""A small synthetic sweep written through the real results writer."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pytest

from izero.results import ResultsStore, collect_provenance

T0 = dt.datetime(2026, 11, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
SWEEP = "synthetic"
TASKS = ("antonyms", "sum")
METHODS = ("instructzero", "random")
SEEDS = (0, 1, 2)
RPM = 120.0

# (task, method) -> per-seed (best dev, test or None).
BEST = {
    ("sum", "instructzero"): [(0.9, 0.8), (0.95, 0.9), (0.85, 1.0)],
    ("sum", "random"): [(0.6, 0.5), (0.7, 0.6), (0.5, 0.7)],
    ("antonyms", "instructzero"): [(0.75, 0.4), (0.8, None), (0.7, 0.6)],
    ("antonyms", "random"): [(0.55, 0.25), (0.45, 0.35), (0.65, 0.3)],
}


def instruction(task: str, method: str, seed: int, index: int) -> str:
    return f"{method} says: solve {task} carefully #{seed}-{index}"


def dev_scores(best: float) -> list[float | None]:
    """Six evaluations whose running maximum ends at ``best`` (index 4); one unanswered."""
    return [best - 0.3, None, best - 0.1, best - 0.2, best, best - 0.05]


@dataclass
class Synthetic:
    store: ResultsStore
    n_calls: int
    n_requests: int


def evaluation_row(task, method, seed, index, score, *, duplicate_of=None, instr=None):
    return {
        "sweep": SWEEP,
        "task": task,
        "method": method,
        "seed": seed,
        "round": 0 if index < 3 else 1,
        "eval_index": index,
        "z": None if method == "manual" else [0.1 * index, -0.2, 0.3],
        "instruction": instr or instruction(task, method, seed, index),
        "dev_score": score,
        "score_vector": [None, None] if score is None else [score, score],
        "n_answered": 0 if score is None else 2,
        "n_failed": 2 if score is None else 0,
        "calls": 0 if duplicate_of is not None else 2,
        "cache_hits": 0,
        "prompt_tokens": 100,
        "completion_tokens": 10,
        "cost_usd": 0.001,
        "latency_s": 0.5,
        "gen_started_at": T0 + dt.timedelta(seconds=index),
        "scored_at": T0 + dt.timedelta(seconds=index + 1),
        "duplicate_of": duplicate_of,
        "generator_model": "tiny:llama",
        "blackbox_model": "sim",
    }


def summary_row(task, method, seed, best, test):
    return {
        "sweep": SWEEP,
        "task": task,
        "method": method,
        "seed": seed,
        "best_instruction": instruction(task, method, seed, 4),
        "best_eval_index": 4,
        "best_dev_score": best,
        "test_score": test,
        "test_score_vector": [None, None] if test is None else [test, test],
        "n_test": 2,
        "n_evaluations": 6,
        "n_unique_instructions": 6,
        "total_calls": 14,
        "total_prompt_tokens": 700,
        "total_completion_tokens": 70,
        "total_cost_usd": 0.01,
        "wall_s": 12.5,
        "finished_at": T0 + dt.timedelta(minutes=5),
        "generator_model": "tiny:llama",
        "blackbox_model": "sim",
    }


def call_rows(n_per_run: int):
    """Calls spread evenly over 3 minutes.

    Every 7th is cached, every 10th retried once, and those with ``i % 25 == 3`` failed with
    429 after three attempts. Returns the rows and the number of HTTP requests they sent.
    """
    rows = []
    k = 0
    runs = [(t, m, s) for t in TASKS for m in METHODS for s in SEEDS]
    total = n_per_run * len(runs)
    for i in range(total):
        task, method, seed = runs[i % len(runs)]
        start = T0 + dt.timedelta(seconds=180.0 * i / total)
        cached = i % 7 == 0
        retried = not cached and i % 10 == 0
        failed = not cached and i % 25 == 3  # rate-limited three times, then given up
        rows.append(
            {
                "sweep": SWEEP,
                "task": task,
                "method": method,
                "seed": seed,
                "started_at": start,
                "finished_at": start + dt.timedelta(seconds=0.2),
                "status": "429" if failed else "ok",
                "attempts": 0 if cached else (3 if failed else 2 if retried else 1),
                "prompt_tokens": 0 if cached else 50,
                "completion_tokens": 0 if cached else 5,
                "cached": cached,
            }
        )
        k += rows[-1]["attempts"]
    return rows, k


def write_synthetic(store: ResultsStore, *, summaries: bool = True) -> Synthetic:
    store.write_provenance(
        collect_provenance(
            config={"blackbox": {"rpm": RPM, "api_key": "sk-secret"}, "tasks": list(TASKS)},
            seeds=SEEDS,
            sweep=SWEEP,
        )
    )
    for (task, method), per_seed in BEST.items():
        for seed, (best, test) in enumerate(per_seed):
            rows = [
                evaluation_row(task, method, seed, i, s) for i, s in enumerate(dev_scores(best))
            ]
            # Write round by round, as the driver does.
            store.append_evaluations(rows[:3])
            store.append_evaluations(rows[3:])
            if summaries:
                store.append_summaries([summary_row(task, method, seed, best, test)])
    calls, n_requests = call_rows(20)
    store.append_calls(calls)
    if summaries:
        store.mark_finished()
    return Synthetic(store=store, n_calls=len(calls), n_requests=n_requests)


@pytest.fixture()
def synthetic(tmp_path) -> Synthetic:
    return write_synthetic(ResultsStore(tmp_path / "sweep"))
