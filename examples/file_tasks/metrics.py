"""A metric plug-in for izero: a number counts as right within 1% of an accepted answer.

izero calls ``close_number(prediction, answers)`` for every answered example, with the black
box's answer after the task's answer extraction (here ``extract: last_number``, so
``"... so the answer is 42."`` arrives as ``"42"``) and the tuple of accepted answers. It must
return a score in [0, 1]; an exception or another value stops the sweep with an error that
names the metric and the example.
"""

from __future__ import annotations

#: Relative tolerance (answers below 1 in size use an absolute tolerance of the same value).
REL_TOL = 0.01


def close_number(prediction: str, answers: tuple[str, ...]) -> float:
    """1.0 when ``prediction`` is a number within ``REL_TOL`` of an accepted answer, else 0.0."""
    try:
        value = float(prediction)
    except ValueError:  # no number in the answer: extraction gave ""
        return 0.0
    for answer in answers:
        target = float(answer)
        if abs(value - target) <= REL_TOL * max(1.0, abs(target)):
            return 1.0
    return 0.0
