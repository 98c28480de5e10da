"""Each (task, method, seed) run of a sweep as an MLflow run, logged from a background thread.

What a run gets:

- params: the sweep's config (flattened, ``budget.q``, ``blackbox.model``, ...; lists as
  JSON), and ``task``, ``method``, ``seed``;
- metrics, with the number of evaluations so far as the step: ``dev_score`` of each
  evaluation, and after each batch of rows (a round) ``best_dev_score``, ``calls``,
  ``tokens`` and ``cost_usd`` so far;
- at the end: ``test_score``, ``best_dev_score``, ``total_calls``, ``total_tokens``,
  ``total_prompt_tokens``, ``total_completion_tokens``, ``total_cost_usd``, ``wall_s``;
  artifacts ``best_instruction.txt`` and ``best_instruction.json`` (scores, black-box model,
  template); and, where the MLflow version and store have a prompt registry, a version of the
  prompt ``<sweep>.<task>.<method>``: the query template with the instruction filled in and an
  ``{{input}}`` variable.

Tags ``izero.sweep`` and ``izero.run`` name the run; a resumed sweep logs into the runs it
started before. Nothing here blocks the sweep: rows are queued, a worker thread logs them, a
tracking server that is down (checked once, then any failure) gives one warning and tracking
stops while the sweep goes on; at the end the queue gets :data:`CLOSE_TIMEOUT_S` seconds.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: Seconds :meth:`MlflowTracker.close` waits for queued rows to be logged.
CLOSE_TIMEOUT_S = 30.0
#: Seconds the reachability check of an HTTP tracking server may take.
HEALTH_TIMEOUT_S = 5.0
#: Most queued batches; beyond it rows are dropped from tracking (never from the results).
MAX_QUEUE = 100_000
#: MLflow accepts at most this many params and metrics in one ``log_batch`` call.
MAX_BATCH_PARAMS = 100
MAX_BATCH_METRICS = 1000
#: Longest param value MLflow stores.
MAX_PARAM_CHARS = 6000
#: Folder beside a SQLite tracking database that holds the artifacts.
ARTIFACTS_DIR = "mlartifacts"
#: Artifact names.
INSTRUCTION_ARTIFACT = "best_instruction.txt"
DETAILS_ARTIFACT = "best_instruction.json"

_CLOSE = object()


def flatten_params(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """A nested config as MLflow params: dotted keys, scalars as text, lists as JSON."""
    out: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten_params(value, name + "."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        if len(text) > MAX_PARAM_CHARS:
            text = text[: MAX_PARAM_CHARS - 3] + "..."
        out[name] = text
    return out


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """Where a new experiment's artifacts go: beside a ``sqlite:///`` database (MLflow's own
    default is ``./mlruns`` in the working directory), else the store's default (None)."""
    if not uri.startswith("sqlite:///"):
        return None
    database = Path(uri[len("sqlite:///") :]).expanduser().resolve()
    return (database.parent / ARTIFACTS_DIR / experiment).as_uri()


def prompt_template(template: str, instruction: str) -> str:
    """The query ``template`` with ``instruction`` in place and MLflow's ``{{input}}``."""
    return template.replace("{instruction}", instruction.strip()).replace("{input}", "{{input}}")


@dataclass
class _Run:
    """What the tracker knows of one (task, method, seed) run."""

    run_id: str | None = None
    best: float | None = None
    evaluations: int = 0
    calls: int = 0
    tokens: int = 0
    cost: float = 0.0
    finished: bool = False


class MlflowTracker:
    """Logs a sweep's runs to MLflow from a background thread (a :class:`RowListener`).

    Args:
        uri: MLflow tracking URI (``sqlite:///...``, ``http://host:5000``, ...).
        experiment: experiment name (created if missing).
        sweep: the sweep's name (tag ``izero.sweep``, prompt names).
        params: the sweep's config as a JSON-safe mapping (logged as params of every run).
        template: the query template the black box is scored under.
        register_prompts: also register best instructions in MLflow's prompt registry.
        artifacts: artifact root of the experiment if it is created (None =
            :func:`default_artifact_location`).
        close_timeout_s: how long :meth:`close` waits for queued rows.
    """

    def __init__(
        self,
        *,
        uri: str,
        experiment: str,
        sweep: str,
        params: Mapping[str, Any],
        template: str,
        register_prompts: bool = True,
        artifacts: str | None = None,
        close_timeout_s: float = CLOSE_TIMEOUT_S,
    ):
        self.uri = uri
        self.experiment = experiment
        self.sweep = sweep
        self.params = flatten_params(params)
        self.template = template
        self.register_prompts = register_prompts
        self.artifacts = artifacts or default_artifact_location(uri, experiment)
        self.close_timeout_s = close_timeout_s
        self.disabled_reason: str | None = None
        self.logged_runs: dict[str, str] = {}
        """``task__method__seed`` -> MLflow run id, for every run logged so far."""
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_QUEUE)
        self._runs: dict[tuple[str, str, int], _Run] = {}
        self._client: Any = None
        self._experiment_id: str | None = None
        self._dropped = False
        self._prompt_warned = False
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="izero-mlflow", daemon=True)
        self._thread.start()

    # -- the RowListener side (the sweep's thread): never blocks, never raises ----------------

    def on_rows(self, rows: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]]) -> None:
        self._put(("rows", list(rows), list(summaries)))

    def on_existing(
        self, rows: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]]
    ) -> None:
        self._put(("existing", list(rows), list(summaries)))

    def _put(self, item: Any) -> None:
        if self._closed or self.disabled_reason is not None:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            if not self._dropped:
                self._dropped = True
                logger.warning(
                    "MLflow tracking falls behind (%d batches queued); later rows are not "
                    "tracked (the results have them all)",
                    MAX_QUEUE,
                )

    def close(self) -> None:
        """Let the worker log what is queued, for at most ``close_timeout_s`` seconds."""
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(queue.Full):
            self._queue.put(_CLOSE, timeout=self.close_timeout_s)
        self._thread.join(self.close_timeout_s)
        if self._thread.is_alive() and self.disabled_reason is None:
            logger.warning(
                "MLflow tracking did not finish within %.0f s; about %d batches were not "
                "logged (the results have every row)",
                self.close_timeout_s,
                self._queue.qsize(),
            )

    # -- the worker thread -------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is _CLOSE:
                return
            if self.disabled_reason is not None:
                continue
            try:
                if self._client is None:
                    self._connect()
                kind, rows, summaries = item
                self._handle(rows, summaries, log=kind == "rows")
            except Exception as err:  # tracking must never stop the sweep
                self._disable(err)

    def _disable(self, err: BaseException) -> None:
        self.disabled_reason = f"{type(err).__name__}: {str(err)[:300]}"
        logger.warning(
            "MLflow tracking at %s stopped (%s); the sweep goes on and its results are complete",
            self.uri,
            self.disabled_reason,
        )

    def _connect(self) -> None:
        if self.uri.startswith(("http://", "https://")):
            url = self.uri.rstrip("/") + "/health"
            try:
                with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT_S):
                    pass
            except (urllib.error.URLError, OSError) as err:
                raise ConnectionError(f"tracking server unreachable ({err})") from err
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        experiment = client.get_experiment_by_name(self.experiment)
        if experiment is None:
            self._experiment_id = client.create_experiment(
                self.experiment, artifact_location=self.artifacts
            )
        else:
            self._experiment_id = experiment.experiment_id
        self._client = client

    def _run_for(self, key: tuple[str, str, int], *, create: bool) -> _Run:
        run = self._runs.setdefault(key, _Run())
        if run.run_id is None and create:
            run_name = f"{key[0]}__{key[1]}__{key[2]}"
            found = self._client.search_runs(
                [self._experiment_id],
                filter_string=(
                    f"tags.`izero.sweep` = '{self.sweep}' and tags.`izero.run` = '{run_name}'"
                ),
                max_results=1,
            )
            if found:
                run.run_id = found[0].info.run_id
            else:
                created = self._client.create_run(
                    self._experiment_id,
                    run_name=run_name,
                    tags={"izero.sweep": self.sweep, "izero.run": run_name},
                )
                run.run_id = created.info.run_id
                params = {**self.params, "task": key[0], "method": key[1], "seed": str(key[2])}
                self._log(run.run_id, params=params)
            self.logged_runs[run_name] = run.run_id
        return run

    def _log(self, run_id: str, *, params: Mapping[str, str] = (), metrics: Sequence = ()):
        from mlflow.entities import Param

        items = [Param(k, v) for k, v in dict(params).items()]
        for i in range(0, len(items), MAX_BATCH_PARAMS):
            self._client.log_batch(run_id, params=items[i : i + MAX_BATCH_PARAMS])
        for i in range(0, len(metrics), MAX_BATCH_METRICS):
            self._client.log_batch(run_id, metrics=list(metrics[i : i + MAX_BATCH_METRICS]))

    def _handle(
        self, rows: Sequence[dict[str, Any]], summaries: Sequence[dict[str, Any]], *, log: bool
    ) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        by_run: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
        for row in rows:
            by_run.setdefault((row["task"], row["method"], row["seed"]), []).append(row)
        for key, run_rows in by_run.items():
            run = self._run_for(key, create=log)
            metrics = []
            for row in sorted(run_rows, key=lambda r: r["eval_index"]):
                run.evaluations = max(run.evaluations, row["eval_index"] + 1)
                run.calls += row["calls"]
                run.tokens += row["prompt_tokens"] + row["completion_tokens"]
                run.cost += row["cost_usd"]
                score = row["dev_score"]
                if score is not None:
                    run.best = score if run.best is None else max(run.best, score)
                    metrics.append(Metric("dev_score", score, now, row["eval_index"] + 1))
            if not log:
                continue
            step = run.evaluations
            if run.best is not None:
                metrics.append(Metric("best_dev_score", run.best, now, step))
            metrics += [
                Metric("calls", run.calls, now, step),
                Metric("tokens", run.tokens, now, step),
                Metric("cost_usd", run.cost, now, step),
            ]
            self._log(run.run_id, metrics=metrics)
        for summary in summaries:
            key = (summary["task"], summary["method"], summary["seed"])
            if log:
                self._finish(self._run_for(key, create=True), summary, now)
            else:
                self._runs.setdefault(key, _Run()).finished = True

    def _finish(self, run: _Run, summary: Mapping[str, Any], now: int) -> None:
        from mlflow.entities import Metric

        if run.finished:
            return
        step = summary["n_evaluations"]
        values = {
            "test_score": summary["test_score"],
            "best_dev_score": summary["best_dev_score"],
            "total_calls": summary["total_calls"],
            "total_prompt_tokens": summary["total_prompt_tokens"],
            "total_completion_tokens": summary["total_completion_tokens"],
            "total_tokens": summary["total_prompt_tokens"] + summary["total_completion_tokens"],
            "total_cost_usd": summary["total_cost_usd"],
            "wall_s": summary["wall_s"],
        }
        metrics = [Metric(k, float(v), now, step) for k, v in values.items() if v is not None]
        self._log(run.run_id, metrics=metrics)
        instruction = summary["best_instruction"]
        if instruction is not None:
            details = {
                "task": summary["task"],
                "method": summary["method"],
                "seed": summary["seed"],
                "instruction": instruction,
                "dev_score": summary["best_dev_score"],
                "test_score": summary["test_score"],
                "blackbox_model": summary["blackbox_model"],
                "generator_model": summary["generator_model"],
                "template": self.template,
                "sweep": self.sweep,
            }
            self._client.log_text(run.run_id, instruction, INSTRUCTION_ARTIFACT)
            self._client.log_text(run.run_id, json.dumps(details, indent=2), DETAILS_ARTIFACT)
            if self.register_prompts:
                self._register_prompt(run.run_id, details)
        self._client.set_terminated(run.run_id, "FINISHED")
        run.finished = True

    def _register_prompt(self, run_id: str, details: Mapping[str, Any]) -> None:
        register = getattr(self._client, "register_prompt", None)
        if register is None:  # an MLflow without a prompt registry
            return
        name = ".".join(
            "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in part)
            for part in (self.sweep, details["task"], details["method"])
        )
        tags = {
            "izero.run": run_id,
            "seed": str(details["seed"]),
            "dev_score": str(details["dev_score"]),
            "test_score": str(details["test_score"]),
            "blackbox_model": str(details["blackbox_model"]),
        }
        try:
            register(
                name=name,
                template=prompt_template(self.template, details["instruction"]),
                commit_message=f"best instruction of seed {details['seed']}",
                tags=tags,
            )
        except Exception as err:  # e.g. a store without a prompt registry: the run stays
            if not self._prompt_warned:
                self._prompt_warned = True
                logger.warning(
                    "MLflow prompt registry at %s refused the best instruction (%s: %s); the "
                    "runs, metrics and artifacts are logged",
                    self.uri,
                    type(err).__name__,
                    str(err)[:200],
                )


def start_tracking(config: Any, *, results_uri: str) -> MlflowTracker | None:
    """The tracker of a sweep config's ``tracking`` section, started; ``None`` without one."""
    mlflow_config = config.tracking.mlflow
    if mlflow_config is None:
        return None
    from izero.config import config_to_dict
    from izero.results.export import scoring_template

    params = config_to_dict(config)
    params.pop("tracking", None)
    params["output"] = {**params.get("output", {}), "uri": results_uri}
    return MlflowTracker(
        uri=mlflow_config.uri,
        experiment=mlflow_config.experiment or config.name,
        sweep=config.name,
        params=params,
        template=scoring_template(params),
        register_prompts=mlflow_config.register_prompts,
        artifacts=mlflow_config.artifacts,
    )
