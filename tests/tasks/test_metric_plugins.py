"""Answer extraction, the numeric metric, metric plug-ins, and metric failures as clear errors."""

from __future__ import annotations

import pickle

import pytest

from izero.blackbox.client import CallOutcome, CallRecord
from izero.blackbox.scoring import summarise
from izero.tasks.extract import extract_answer
from izero.tasks.metrics import MetricError, MetricSpec, check_metric, score_answer
from izero.tasks.types import Example

from . import plugin_metrics

PLUGIN = "tests.tasks.plugin_metrics"


@pytest.mark.parametrize(
    ("text", "rule", "expected"),
    [
        ("Tom has 3 + 4 = 7 apples, so the answer is 42.", "last_number", "42"),
        ("It costs $1,234.50 in total", "last_number", "1234.5"),
        ("-3.0 degrees", "last_number", "-3"),
        ("no digits here", "last_number", ""),
        ("The answer is (B). Not (C) though", r"regex:answer is \(?([A-E])\)?", "B"),
        ("A then C", "regex:[A-E]", "C"),  # the last match, the whole match without groups
        ("nothing", "regex:answer is (\\d+)", ""),
        ("unchanged", None, "unchanged"),
    ],
)
def test_extraction(text, rule, expected):
    assert extract_answer(text, rule) == expected


def test_so_the_answer_is_42_scores_as_42():
    answer = "... 40 plus 2, so the answer is 42."
    assert score_answer(answer, ("42",), MetricSpec("exact_match", "last_number")) == 1.0
    assert score_answer(answer, ("42",), "exact_match") == 0.0
    assert score_answer(answer, ("41",), MetricSpec("exact_match", "last_number")) == 0.0
    spec = MetricSpec("exact_match", r"regex:answer is (\d+)")
    assert score_answer(answer, ("42",), spec) == 1.0


def test_numeric_metric_compares_numbers_not_prefixes():
    assert score_answer("3.5", ("3.50",), "numeric") == 1.0
    assert score_answer("3.7", ("3.5",), "numeric") == 0.0
    assert score_answer("3.7", ("3.5",), "exact_match") == 1.0  # upstream: text before "."
    assert score_answer("1,000", ("1000",), "numeric") == 1.0
    assert score_answer("a thousand", ("1000",), "numeric") == 0.0


def test_plugin_gets_the_extracted_prediction_and_all_answers():
    plugin_metrics.CALLS.clear()
    spec = MetricSpec(f"{PLUGIN}:recording", "last_number")
    assert score_answer("so the answer is 12.", ["12", "twelve"], spec) == 1.0
    assert score_answer("I think 13", ("12",), spec) == 0.0
    assert plugin_metrics.CALLS == [("12", ("12", "twelve")), ("13", ("12",))]
    assert score_answer("anything", ("x",), f"{PLUGIN}:half") == 0.5  # a plain string spec


def test_metric_specs_are_hashable_and_picklable():
    spec = MetricSpec(f"{PLUGIN}:half", "regex:(\\d+)")
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert {spec: 1}[MetricSpec(f"{PLUGIN}:half", "regex:(\\d+)")] == 1


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("nosuchmodule_xyz:f", "cannot be imported"),
        (f"{PLUGIN}:missing", "has no 'missing'"),
        (f"{PLUGIN}:NOT_CALLABLE", "not a function"),
        ("exact", "unknown metric"),
        ("module-with-dash:f", "unknown metric"),
        (MetricSpec("exact_match", "regex:("), "does not compile"),
        (MetricSpec("exact_match", "first_word"), "unknown answer extraction"),
    ],
)
def test_bad_metrics_are_refused(metric, expected):
    with pytest.raises(MetricError, match=expected):
        check_metric(metric)


def _outcome(text: str | None) -> CallOutcome:
    record = CallRecord(
        started_at=0.0,
        finished_at=0.0,
        status="200" if text is not None else "500",
        attempts=1,
        prompt_tokens=1,
        completion_tokens=1,
        cached=False,
        ok=text is not None,
    )
    return CallOutcome(text=text, record=record)


EXAMPLES = [Example("What is 6 * 7?", ("42",)), Example("What is 2 + 2?", ("4",))]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("broken", "raised ZeroDivisionError"),
        ("too_big", "returned 1.5"),
        ("not_a_number", "returned 'yes'"),
        ("nan", "returned nan"),
    ],
)
def test_a_failing_metric_stops_with_the_metric_and_the_example(name, expected):
    from izero.tasks.metrics import score_answer as scorer

    outcomes = [_outcome("so the answer is 42."), _outcome("4")]
    with pytest.raises(MetricError) as info:
        summarise(
            "Compute.",
            EXAMPLES,
            outcomes,
            metric=MetricSpec(f"{PLUGIN}:{name}", "last_number"),
            scorer=scorer,
            latency_s=0.0,
        )
    msg = str(info.value)
    assert "\n" not in msg
    assert f"{PLUGIN}:{name}" in msg and expected in msg, msg
    assert "example 1 of 2" in msg and "What is 6 * 7?" in msg and "Fix:" in msg


def test_a_non_finite_builtin_score_is_an_error_not_a_zero():
    def scorer(prediction, answers, metric):
        return float("inf")

    with pytest.raises(MetricError, match="returned inf"):
        summarise(
            "x", EXAMPLES[:1], [_outcome("42")], metric="exact_match", scorer=scorer, latency_s=0
        )
    # failed calls are still left out, not scored
    result = summarise(
        "x",
        EXAMPLES,
        [_outcome(None), _outcome("so 4")],
        metric=MetricSpec("numeric", "last_number"),
        scorer=score_answer,
        latency_s=0,
    )
    assert result.scores == (None, 1.0) and result.mean == 1.0
