"""Metric plug-ins: a user's own notion of a correct answer, named ``"module:function"``.

The function's signature::

    def my_metric(prediction: str, answers: tuple[str, ...]) -> float: ...

``prediction`` is the black box's raw answer (after the task's answer extraction, if any; not
normalised), ``answers`` the example's accepted answers (canonical first). It returns a score
in [0, 1] (``bool`` counts as 0 or 1). A function that raises, or returns anything else, stops
the sweep with an error naming the metric and the example: a broken metric never turns into a
silent 0.

``module`` is imported as Python imports it, with the working directory on the path (it is put
there when the module is not found otherwise), so ``examples.file_tasks.metrics:close_number``
works from the repository root. Scoring runs in Ray worker processes: on one machine they start
in the driver's working directory; on a cluster, ship the module with the job
(``ray job submit --working-dir .``) or install it on the nodes.
"""

from __future__ import annotations

import functools
import importlib
import math
import os
import re
import sys
from collections.abc import Callable, Sequence

from izero.tasks.metrics import MetricError

PluginFunction = Callable[[str, tuple[str, ...]], float]
"""``f(prediction, accepted_answers) -> score in [0, 1]``."""

_PLUGIN_RE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")

#: How a plug-in name is written, for messages.
PLUGIN_FORM = "'module:function' (e.g. my_metrics:close_enough)"


def is_plugin_name(name: str) -> bool:
    """Whether ``name`` has the plug-in form ``module:function`` (dotted parts allowed)."""
    return isinstance(name, str) and _PLUGIN_RE.match(name) is not None


def _import(module_name: str):
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or module_name
        cwd = os.getcwd()
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise  # the plug-in module itself imports something that is missing
        if cwd in sys.path or "" in sys.path:
            raise
        # Paths in configs are relative to the working directory; plug-in modules are too.
        sys.path.append(cwd)
        return importlib.import_module(module_name)


@functools.lru_cache(maxsize=64)
def load_metric_plugin(name: str) -> PluginFunction:
    """The function that plug-in ``name`` (``module:function``) names.

    Raises:
        MetricError: not of the form ``module:function``, the module cannot be imported, or it
            has no such callable.
    """
    if not is_plugin_name(name):
        raise MetricError(
            f"metric plug-in {name!r} is not of the form {PLUGIN_FORM}. Fix: name the module "
            "and the function, separated by ':'"
        )
    module_name, _, attr = name.partition(":")
    try:
        module = _import(module_name)
    except Exception as exc:
        raise MetricError(
            f"metric plug-in {name!r}: module {module_name!r} cannot be imported "
            f"({type(exc).__name__}: {exc}). Fix: run from the folder that holds it, or put "
            "that folder on PYTHONPATH (Ray workers need it too)"
        ) from exc
    target = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise MetricError(
                f"metric plug-in {name!r}: module {module_name!r} has no {attr!r}. Fix: check "
                "the function name"
            )
    if not callable(target):
        raise MetricError(
            f"metric plug-in {name!r} is a {type(target).__name__}, not a function. Fix: name "
            "a function f(prediction, answers) -> float"
        )
    return target


def call_metric_plugin(name: str, prediction: str, answers: Sequence[str]) -> float:
    """Call plug-in ``name`` and check its value.

    Exceptions the plug-in raises propagate unchanged (the caller names the example).

    Raises:
        MetricError: the plug-in cannot be loaded, or returned something other than a finite
            number in [0, 1].
    """
    fn = load_metric_plugin(name)
    value = fn(prediction, tuple(answers))
    if isinstance(value, bool):
        return float(value)
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = math.nan
    if not (math.isfinite(score) and 0.0 <= score <= 1.0) or isinstance(value, str):
        raise MetricError(
            f"metric plug-in {name!r} returned {value!r} for prediction {prediction[:80]!r}; "
            f"expected a number in [0, 1]. Fix: make {name} return a score in [0, 1]"
        )
    return score
