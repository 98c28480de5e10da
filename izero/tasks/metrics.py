"""Per-example metrics of the instruction-induction benchmark.

Mirrors the evaluation of Honovich et al. (2022) as used by APE and InstructZero:
a prediction and each accepted answer are normalised by :func:`normalize_prediction`, then
compared with one of four metrics; a prediction scores the best value over all accepted answers.

Normalisation (upstream, in this order): ``" and "`` becomes a space (so "a, b and c" equals
"a, b, c" as a list), the literal prefixes ``"Sentence 1:"``/``"Sentence 2:"`` are dropped,
surrounding whitespace is stripped, **only the first line** is kept, then only the text before
the first ``"."`` (so ``"Zeit. Because ..."`` reads ``"zeit"``; ``"3.5"`` reads ``"3"``, as
upstream), the text is lower-cased, ``"-"`` becomes a space and punctuation is removed.

Deliberate differences from upstream, each of which only makes equal answers compare equal:

- Unicode text is NFC-normalised first, so a composed "é" and "e" + combining accent match.
- Unicode punctuation (``¿ ¡ « » “ ” …``) is removed as well as ASCII punctuation.
- Runs of whitespace are collapsed to one space.
- A prediction that normalises to the empty string scores 0 under every metric (upstream's exact
  match would count an empty response as correct for an answer that normalises to empty), and
  accepted answers that normalise to the empty string are ignored.

Articles are *not* removed (unlike SQuAD): upstream keeps them, and the one-letter answer "a"
of ``orthography_starts_with`` must survive normalisation.

Beyond upstream's four metrics:

- ``numeric``: the prediction and an answer are the same number (:func:`canonical_number`:
  thousands separators, ``$``/``+`` and a trailing ``.`` ignored); no normalisation, so
  ``"3.5"`` and ``"3.7"`` differ (under ``exact_match`` both read ``"3"``, as upstream).
- Plug-ins: a metric named ``"module:function"`` is ``function(prediction, answers) -> float``
  of :mod:`izero.tasks.plugins`, called with the (extracted) raw prediction and the tuple of
  accepted answers; it must return a number in [0, 1].
- A :class:`MetricSpec` adds an answer-extraction rule (:mod:`izero.tasks.extract`) applied to
  the prediction before any metric. A metric travels to the scoring workers as a plain name or
  as a ``MetricSpec`` (frozen, hashable, picklable).
"""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from izero.errors import IZeroError
from izero.tasks.extract import canonical_number, check_extraction, extract_answer

EXACT_MATCH = "exact_match"
F1 = "f1"
EXACT_SET = "exact_set"
CONTAINS = "contains"
NUMERIC = "numeric"

#: The metric of every task not listed in :data:`TASK_TO_METRIC`.
DEFAULT_METRIC = EXACT_MATCH

#: Upstream's task-to-metric map (instruction-induction README).
TASK_TO_METRIC: Mapping[str, str] = {
    "common_concept": F1,
    "informal_to_formal": F1,
    "orthography_starts_with": EXACT_SET,
    "taxonomy_animal": EXACT_SET,
    "synonyms": CONTAINS,
}

_ASCII_PUNCTUATION = frozenset(string.punctuation)


class MetricError(IZeroError, ValueError):
    """A metric was asked for that does not exist, there was nothing to compare against, or a
    metric failed or gave a value outside [0, 1]."""


@dataclass(frozen=True)
class MetricSpec:
    """A task's metric with its answer extraction, as it travels to the scoring workers.

    ``name``: a built-in metric (:data:`METRICS`) or a plug-in ``"module:function"``;
    ``extract``: ``None``, ``"last_number"`` or ``"regex:<pattern>"``
    (:mod:`izero.tasks.extract`), applied to the prediction first.
    """

    name: str
    extract: str | None = None

    def __str__(self) -> str:
        return self.name if self.extract is None else f"{self.name} (extract {self.extract})"


Metric = str | MetricSpec
"""What ``TaskSplits.metric`` holds: a metric name, or a :class:`MetricSpec`."""


def _is_punctuation(ch: str) -> bool:
    return ch in _ASCII_PUNCTUATION or unicodedata.category(ch).startswith("P")


def normalize_prediction(text: str, *, lowercase: bool = True) -> str:
    """Normalise a prediction or an answer as the instruction-induction evaluation does.

    See the module docstring for the exact steps and the few deliberate differences.
    """
    text = unicodedata.normalize("NFC", text)
    text = text.replace(" and ", " ")
    text = text.replace("Sentence 1:", " ").replace("Sentence 2:", " ")
    text = text.strip()
    text = text.split("\n")[0]
    text = text.split(".")[0]
    if lowercase:
        text = text.lower()
    text = text.replace("-", " ")
    text = "".join(ch for ch in text if not _is_punctuation(ch))
    return " ".join(text.split())


def _exact_match(prediction: str, answer: str) -> float:
    return float(prediction == answer)


def _f1(prediction: str, answer: str) -> float:
    pred_tokens = prediction.split()
    answer_tokens = answer.split()
    common = Counter(pred_tokens) & Counter(answer_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(answer_tokens)
    return 2 * precision * recall / (precision + recall)


def _exact_set(prediction: str, answer: str) -> float:
    return float(set(prediction.split()) == set(answer.split()))


def _contains(prediction: str, answer: str) -> float:
    return float(re.search(rf"\b{re.escape(answer)}\b", prediction) is not None)


def _numeric(prediction: str, answer: str) -> float:
    pred, norm = canonical_number(prediction), canonical_number(answer)
    return float(pred is not None and pred == norm)


# Metric name -> comparison of one *normalised* prediction with one *normalised* answer.
_COMPARE: Mapping[str, Callable[[str, str], float]] = {
    EXACT_MATCH: _exact_match,
    F1: _f1,
    EXACT_SET: _exact_set,
    CONTAINS: _contains,
}


def _raw_metric(compare: Callable[[str, str], float]) -> Callable[[str, str], float]:
    def metric(prediction: str, answer: str) -> float:
        pred, norm = normalize_prediction(prediction), normalize_prediction(answer)
        return compare(pred, norm) if pred and norm else 0.0

    metric.__name__ = compare.__name__.lstrip("_")
    metric.__doc__ = f"``{metric.__name__}`` of one raw prediction and one raw answer, in [0, 1]."
    return metric


#: Metric name -> ``f(prediction, answer) -> float`` on raw strings (normalised inside).
METRICS: Mapping[str, Callable[[str, str], float]] = {
    **{name: _raw_metric(compare) for name, compare in _COMPARE.items()},
    NUMERIC: _numeric,
}


def as_metric_spec(metric: Metric) -> MetricSpec:
    """``metric`` as a :class:`MetricSpec` (a plain name has no extraction)."""
    if isinstance(metric, MetricSpec):
        return metric
    if not isinstance(metric, str):
        raise MetricError(
            f"metric must be a name or a MetricSpec, got {type(metric).__name__} {metric!r}. "
            "Fix: pass e.g. 'exact_match' or MetricSpec('exact_match', extract='last_number')"
        )
    return MetricSpec(metric)


def metric_spec(name: str, extract: str | None = None) -> Metric:
    """The metric value a task carries: the plain ``name`` when there is no extraction (so
    built-in tasks and most file tasks keep a string), else a :class:`MetricSpec`."""
    return name if extract is None else MetricSpec(name, extract)


def check_metric(metric: Metric) -> None:
    """Raise :class:`MetricError` unless ``metric`` names a built-in metric or an importable
    plug-in ``module:function``, and its extraction rule (if any) is valid."""
    spec = as_metric_spec(metric)
    if spec.extract is not None:
        try:
            check_extraction(spec.extract)
        except ValueError as exc:
            raise MetricError(str(exc)) from exc
    if spec.name in METRICS:
        return
    from izero.tasks.plugins import is_plugin_name, load_metric_plugin

    if not is_plugin_name(spec.name):
        raise MetricError(
            f"unknown metric {spec.name!r}; expected one of {sorted(METRICS)} or a plug-in "
            "'module:function'. Fix: use one of those names"
        )
    load_metric_plugin(spec.name)


def metric_for_task(name: str) -> str:
    """The upstream metric of task ``name`` (``exact_match`` unless listed otherwise)."""
    return TASK_TO_METRIC.get(name, DEFAULT_METRIC)


def score_answer(prediction: str, answers: Sequence[str], metric: Metric) -> float:
    """Score one prediction against every accepted answer; return the best score in [0, 1].

    Args:
        prediction: the black box's raw answer (for the built-in metrics other than
            ``numeric`` only its first line counts, see above).
        answers: the accepted answers of the example; at least one.
        metric: a name of :data:`METRICS`, a plug-in ``"module:function"``, or a
            :class:`MetricSpec` (metric plus answer extraction).

    Raises:
        MetricError: unknown metric or plug-in, ``answers`` empty or a bare string, or a
            plug-in that returns something other than a number in [0, 1].
    """
    spec = as_metric_spec(metric)
    if spec.extract is not None:
        try:
            prediction = extract_answer(prediction, spec.extract)
        except ValueError as exc:
            raise MetricError(str(exc)) from exc
    if spec.name not in METRICS:
        check_metric(spec.name)
    if isinstance(answers, str):
        raise MetricError(
            f"answers must be a sequence of strings, got the string {answers[:40]!r}. "
            "Fix: pass (answer,) instead"
        )
    if len(answers) == 0:
        raise MetricError(
            "answers is empty; expected at least one accepted answer. Fix: check the task data"
        )
    if spec.name not in METRICS:
        from izero.tasks.plugins import call_metric_plugin

        return call_metric_plugin(spec.name, prediction, tuple(answers))
    if spec.name == NUMERIC:
        return max(_numeric(prediction, answer) for answer in answers)
    pred = normalize_prediction(prediction)
    if not pred:
        return 0.0
    compare = _COMPARE[spec.name]
    best = 0.0
    for answer in answers:
        norm = normalize_prediction(answer)
        if not norm:
            continue
        best = max(best, compare(pred, norm))
        if best >= 1.0:
            break
    return best
