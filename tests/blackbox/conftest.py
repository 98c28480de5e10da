"""Fixtures for the black-box tests: hand-built tasks, a plain scorer and simulated servers."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from izero.blackbox.simulated import SimulatedOptions, SimulatedServer
from izero.tasks.types import Example, Task

MODEL = "izero-sim"
SECRET_KEY = "sk-test-THIS-KEY-MUST-NEVER-LEAK-0123456789"


def exact_scorer(prediction: str, answers: Sequence[str], metric: str) -> float:
    """A private stand-in for izero.tasks.metrics.score_answer (exact match only)."""
    assert metric == "exact_match"
    return float(prediction.strip().lower() in {a.strip().lower() for a in answers})


def _sum_examples() -> tuple[Example, ...]:
    return tuple(Example(f"{a} {b}", (str(a + b),)) for a in range(12) for b in range(12))


@pytest.fixture(scope="session")
def sum_task() -> Task:
    examples = _sum_examples()
    return Task(
        name="sum",
        metric="exact_match",
        induce=examples[:100],
        execute=examples[100:],
        annotations=("Add the two numbers.", "Sum the two numbers together."),
        source="builtin",
    )


@pytest.fixture(scope="session")
def antonym_task() -> Task:
    pairs = [
        ("hot", "cold"),
        ("up", "down"),
        ("big", "small"),
        ("fast", "slow"),
        ("open", "closed"),
        ("light", "dark"),
        ("early", "late"),
        ("full", "empty"),
    ]
    examples = tuple(Example(a, (b,)) for a, b in pairs)
    return Task("antonyms", "exact_match", examples, (), ("Write the antonym of the word.",))


@pytest.fixture
def make_server(sum_task, antonym_task):
    """Start simulated servers knowing ``sum`` and ``antonyms``; all stopped at teardown."""
    servers: list[SimulatedServer] = []

    def start(**options) -> SimulatedServer:
        opts = SimulatedOptions(model=MODEL, **options)
        server = SimulatedServer([sum_task, antonym_task], options=opts)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
