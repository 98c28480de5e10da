"""The ``tracking`` section: experiment tracking of a sweep's runs (MLflow, optional extra).

::

    tracking:
      mlflow:
        uri: sqlite:///runs/mlflow.db   # or http://mlflow:5000, databricks, file:./mlruns
        experiment: izero               # null = the sweep's name
        register_prompts: true          # the best instruction also in the prompt registry
        artifacts: null                 # artifact root of a new experiment (s3://..., a folder);
                                        # null = beside a SQLite file, else the server's default

Credentials never go in the URI: MLflow reads them from ``MLFLOW_TRACKING_USERNAME`` /
``MLFLOW_TRACKING_PASSWORD`` / ``MLFLOW_TRACKING_TOKEN``.
"""

from __future__ import annotations

import importlib.util
import urllib.parse
from dataclasses import dataclass
from typing import ClassVar

from izero.config._checks import check

#: How to install the tracking extra (named in errors).
MLFLOW_EXTRA = "pip install 'izero[mlflow]'"


@dataclass(frozen=True)
class MlflowConfig:
    """Where each (task, method, seed) run is logged as an MLflow run.

    ``uri``: MLflow tracking URI; ``experiment``: experiment name (``None`` = the sweep's
    name); ``register_prompts``: also register each run's best instruction (in the query
    template) in MLflow's prompt registry, where the MLflow version and store have one;
    ``artifacts``: where a newly created experiment keeps its artifacts (``None`` = a folder
    ``mlartifacts`` beside a ``sqlite:///`` database, else the tracking server's default).
    """

    _SECTION: ClassVar[str] = "tracking.mlflow."

    uri: str
    experiment: str | None = None
    register_prompts: bool = True
    artifacts: str | None = None

    def __post_init__(self) -> None:
        check(bool(self.uri.strip()), f"{self._SECTION}uri", self.uri, "an MLflow tracking URI")
        parsed = urllib.parse.urlsplit(self.uri)
        check(
            parsed.password is None and not (parsed.username and parsed.scheme.startswith("http")),
            f"{self._SECTION}uri",
            "<a URI with credentials>",
            "a tracking URI without user name or password",
            "put credentials in MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or "
            "MLFLOW_TRACKING_TOKEN instead",
        )
        check(
            self.experiment is None or bool(self.experiment.strip()),
            f"{self._SECTION}experiment",
            self.experiment,
            "an experiment name, or null for the sweep's name",
        )
        check(
            importlib.util.find_spec("mlflow") is not None,
            f"{self._SECTION}uri",
            self.uri,
            "tracking with MLflow installed",
            f"{MLFLOW_EXTRA}, or remove the tracking section",
        )


@dataclass(frozen=True)
class TrackingConfig:
    """Experiment tracking: ``mlflow`` (``None`` = no tracking)."""

    mlflow: MlflowConfig | None = None
