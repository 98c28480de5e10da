"""Hand-worked cases for the instruction-induction metrics and their normalisation."""

from __future__ import annotations

import unicodedata

import pytest

from izero.tasks.metrics import (
    METRICS,
    MetricError,
    metric_for_task,
    normalize_prediction,
    score_answer,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Hello, World!", "hello world"),
        ("  spaced   out  ", "spaced out"),
        ("red, green and blue", "red green blue"),
        ("Sentence 1: It rained.", "it rained"),
        ("first line\nsecond line", "first line"),
        ("\n\nafter blank lines\nmore", "after blank lines"),
        ("thirty-one", "thirty one"),
        ("Zeit. Because it is time", "zeit"),
        ("¿Qué hora es?", "qué hora es"),
        ("«Bonjour»", "bonjour"),
        ("a", "a"),  # articles are kept (orthography_starts_with answers "a")
        ("", ""),
    ],
)
def test_normalize_prediction(raw: str, expected: str) -> None:
    assert normalize_prediction(raw) == expected


def test_metric_map_matches_upstream() -> None:
    assert metric_for_task("common_concept") == "f1"
    assert metric_for_task("informal_to_formal") == "f1"
    assert metric_for_task("orthography_starts_with") == "exact_set"
    assert metric_for_task("taxonomy_animal") == "exact_set"
    assert metric_for_task("synonyms") == "contains"
    assert metric_for_task("sum") == "exact_match"
    assert metric_for_task("no_such_task") == "exact_match"
    # upstream's four, plus izero's "numeric" for extracted numbers (see test_metric_plugins)
    assert set(METRICS) == {"exact_match", "f1", "exact_set", "contains", "numeric"}


def test_exact_match_punctuation_case_and_any_answer() -> None:
    assert score_answer("Insane.", ("insane",), "exact_match") == 1.0
    assert score_answer("insanely", ("insane",), "exact_match") == 0.0
    # Each accepted answer is tried: the second one matches.
    assert score_answer("tiempo", ("hora", "tiempo"), "exact_match") == 1.0
    assert score_answer("The answer is 64", ("64",), "exact_match") == 0.0


def test_exact_match_sentence_prefix_for_cause_and_effect() -> None:
    answer = "It started raining."
    assert score_answer("Sentence 2: It started raining.", (answer,), "exact_match") == 1.0
    assert score_answer("Sentence 1: It started raining", (answer,), "exact_match") == 1.0


def test_multi_line_prediction_only_first_line_counts() -> None:
    assert score_answer("64\nbecause 23 + 41 = 64", ("64",), "exact_match") == 1.0
    assert score_answer("Let me think.\n64", ("64",), "exact_match") == 0.0


def test_num_to_verbal_and_hyphen_variants_match() -> None:
    answer = "two thousand, two hundred and thirty-one"
    assert score_answer("Two thousand two hundred thirty one", (answer,), "exact_match") == 1.0


def test_non_ascii_translations_match() -> None:
    assert score_answer("Zeitalter", ("Zeit", "Zeitalter"), "exact_match") == 1.0
    assert score_answer("chronométrer", ("chronométrer",), "exact_match") == 1.0
    decomposed = unicodedata.normalize("NFD", "chronométrer")
    assert decomposed != "chronométrer"
    assert score_answer(decomposed, ("chronométrer",), "exact_match") == 1.0
    assert score_answer("¡Mañana!", ("mañana",), "exact_match") == 1.0
    assert score_answer("Straße", ("Strasse",), "exact_match") == 0.0
    assert score_answer("Größe", ("größe",), "exact_match") == 1.0


def test_f1_hand_worked() -> None:
    # pred tokens: involve going up; answer: involve vertical movement -> 1 common token
    # precision 1/3, recall 1/3 -> f1 1/3
    got = score_answer("involve going up", ("involve vertical movement.",), "f1")
    assert got == pytest.approx(1 / 3)
    # best over answers: the second one matches exactly
    got = score_answer(
        "involve going up", ("involve vertical movement.", "involve going up."), "f1"
    )
    assert got == pytest.approx(1.0)
    # pred "it is my view" vs "It is my opinion that this is interesting"
    # common: it, is, my (3); precision 3/4; recall 3/8 (8 tokens); f1 = 2*.75*.375/1.125 = 0.5
    got = score_answer("It is my view", ("It is my opinion that this is interesting.",), "f1")
    assert got == pytest.approx(0.5)
    assert score_answer("unrelated", ("involve oscillations.",), "f1") == 0.0


def test_exact_set_lists_with_and() -> None:
    answer = "chicken, spider, tortoise"
    assert score_answer("spider, chicken and tortoise", (answer,), "exact_set") == 1.0
    assert score_answer("Tortoise, Spider, Chicken.", (answer,), "exact_set") == 1.0
    assert score_answer("chicken, spider", (answer,), "exact_set") == 0.0
    assert score_answer("chicken, spider, tortoise, taxi", (answer,), "exact_set") == 0.0


def test_contains_needs_whole_words() -> None:
    assert score_answer("I would say rest or sleep", ("rest",), "contains") == 1.0
    assert score_answer("restaurant", ("rest",), "contains") == 0.0
    assert score_answer("A big house", ("big house",), "contains") == 1.0
    assert score_answer("c++ is fine", ("c++",), "contains") == 1.0  # no regex injection


def test_empty_prediction_and_empty_answers() -> None:
    for metric in sorted(set(METRICS) - {"numeric"}):  # the text metrics ("numeric": numbers)
        assert score_answer("", ("rest",), metric) == 0.0
        assert score_answer("...", ("rest",), metric) == 0.0
        # an answer that normalises to empty can never be matched, even by an empty reply
        assert score_answer("", ("...",), metric) == 0.0
        assert score_answer("rest", ("...", "rest"), metric) == 1.0
    with pytest.raises(MetricError, match="answers is empty"):
        score_answer("x", (), "exact_match")
    with pytest.raises(MetricError, match="sequence of strings"):
        score_answer("x", "x", "exact_match")  # type: ignore[arg-type]


def test_unknown_metric_names_the_choices() -> None:
    with pytest.raises(MetricError, match=r"unknown metric 'bleu'.*'contains'.*'exact_match'"):
        score_answer("x", ("x",), "bleu")


@pytest.mark.parametrize("metric", sorted(METRICS))
def test_scores_are_in_unit_interval(metric: str) -> None:
    for pred in ("", "a", "a b c and d", "Zeit", "x\ny", "one, two"):
        got = score_answer(pred, ("a b", "Zeit", "one two"), metric)
        assert 0.0 <= got <= 1.0


def test_metrics_table_functions_normalise_raw_strings() -> None:
    assert METRICS["exact_match"]("Insane.", "insane") == 1.0
    assert METRICS["exact_set"]("b and a", "a, b") == 1.0
    assert METRICS["contains"]("I say REST", "rest") == 1.0
    assert METRICS["f1"]("a b", "a c") == pytest.approx(0.5)
    assert METRICS["exact_match"]("", "") == 0.0
