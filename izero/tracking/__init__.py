"""Experiment tracking of a sweep's runs, off the sweep's path (optional extra ``izero[mlflow]``).

The driver's :class:`~izero.driver.recorder.Recorder` hands every batch of evaluation rows and
run summaries it writes to its listeners (:class:`RowListener`). :class:`MlflowTracker` is one:
it queues them and logs them to MLflow from a background thread, so tracking never slows the
sweep, and a tracking server that is down costs one warning and nothing else.

Public API::

    start_tracking(config, results_uri=..., sweep_config=...) -> MlflowTracker | None
    MlflowTracker(uri=..., experiment=..., sweep=..., params=..., template=...)
"""

from izero.tracking.listener import RowListener
from izero.tracking.mlflow_tracker import MlflowTracker, start_tracking

__all__ = ["MlflowTracker", "RowListener", "start_tracking"]
