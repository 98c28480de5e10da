"""The whole sweep: tasks x methods x seeds, and its sections."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Literal

from izero.config._checks import NAME_RE, check
from izero.config.blackbox import BlackBoxConfig
from izero.config.budget import BudgetConfig
from izero.config.data import DataConfig
from izero.config.generator import GeneratorConfig
from izero.config.optimizer import OptimizerConfig
from izero.config.output import OutputConfig
from izero.config.prompts import PromptsConfig
from izero.config.proposer import ProposerConfig
from izero.config.tasks import TaskFileConfig
from izero.config.tracking import TrackingConfig
from izero.errors import ConfigError, TaskDataError

DEFAULT_NAME = "izero-sweep"
#: Built-in tasks, so that the default configuration runs offline with nothing but the repo.
DEFAULT_TASKS: tuple[str, ...] = ("sum", "diff", "first_word_letter")
DEFAULT_SEEDS: tuple[int, ...] = (0,)
DEFAULT_METHODS: tuple[str, ...] = ("instructzero",)


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: every method on every task for every seed.

    ``tasks``: built-in task names, plus task files of ``data_dir`` when it is given (a file
    task wins over a built-in task of the same name), and a user's own task files
    (:class:`~izero.config.tasks.TaskFileConfig` entries). ``metric_overrides`` maps a named
    task to a metric other than its upstream one (a task file sets its own ``metric``).
    ``methods``: names from :mod:`izero.methods`; ``method_options`` maps a method of the sweep
    to its settings (the fields of its options class, e.g. ``{sampling: {temperature: 0.7}}``).
    ``preset`` records the top-level preset the sections started from
    (:data:`izero.config.presets.SWEEP_PRESETS`), if any. ``proposer``: the endpoint of methods
    where an LLM proposes instructions (``ape``); None: the black box proposes.
    """

    name: str = DEFAULT_NAME
    preset: Literal["izero", "instructzero-original"] | None = None
    tasks: tuple[str | TaskFileConfig, ...] = DEFAULT_TASKS
    data_dir: str | None = None
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    methods: tuple[str, ...] = DEFAULT_METHODS
    method_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    metric_overrides: dict[str, str] = field(default_factory=dict)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    blackbox: BlackBoxConfig = field(default_factory=BlackBoxConfig)
    proposer: ProposerConfig | None = None
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)

    def __post_init__(self) -> None:
        check(
            bool(NAME_RE.match(self.name)),
            "name",
            self.name,
            "letters, digits, '_', '.' or '-' (it names the output folder)",
        )
        check(bool(self.seeds), "seeds", self.seeds, "at least one seed")
        for seed in self.seeds:
            check(
                isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
                "seeds",
                seed,
                "integers >= 0",
            )
        check(len(set(self.seeds)) == len(self.seeds), "seeds", self.seeds, "distinct seeds")
        from izero.methods.registry import METHOD_NAMES as METHODS

        check(bool(self.methods), "methods", self.methods, f"one or more of {', '.join(METHODS)}")
        for method in self.methods:
            hint = difflib.get_close_matches(method, METHODS, n=1)
            check(
                method in METHODS,
                "methods",
                method,
                f"one of {', '.join(METHODS)}",
                f"did you mean '{hint[0]}'?" if hint else "use one of those names",
            )
        check(len(set(self.methods)) == len(self.methods), "methods", self.methods, "no duplicates")
        self._check_generator_serves()
        for method in self.method_options:
            check(
                method in self.methods,
                f"method_options.{method}",
                method,
                f"a method of this sweep ({', '.join(self.methods)})",
                "add the method to methods or remove its options",
            )
            self.method_options_for(method)  # validates its fields
        self._check_proposer()
        self._check_tasks()
        from izero.tasks.metrics import METRICS, MetricError, check_metric
        from izero.tasks.plugins import is_plugin_name

        files = {t.name for t in self.tasks if isinstance(t, TaskFileConfig)}
        for task, metric in self.metric_overrides.items():
            check(
                task in self.task_names,
                f"metric_overrides.{task}",
                task,
                f"a task of this sweep ({', '.join(self.task_names)})",
                "add the task to tasks or remove the override",
            )
            check(
                task not in files,
                f"metric_overrides.{task}",
                metric,
                "no override for a task file",
                f"set metric: in the entry of task {task!r} instead",
            )
            if is_plugin_name(metric):
                try:
                    check_metric(metric)
                except MetricError as exc:
                    reason, _, fix = str(exc).partition(". Fix: ")
                    raise ConfigError(
                        f"metric_overrides.{task}", metric, "an importable plug-in", fix or reason
                    ) from None
                continue
            hint = difflib.get_close_matches(metric, list(METRICS), n=1)
            check(
                metric in METRICS,
                f"metric_overrides.{task}",
                metric,
                f"one of {', '.join(sorted(METRICS))}, or a plug-in module:function",
                f"did you mean '{hint[0]}'?" if hint else "use one of those metric names",
            )

    def _check_proposer(self) -> None:
        """Methods where an LLM proposes need an endpoint that can: a local ``hf`` black box
        answers scoring queries only."""
        from izero.methods.registry import method_class

        needing = [m for m in self.methods if method_class(m).llm_proposer]
        if needing and self.proposer is None:
            check(
                self.blackbox.backend != "hf",
                "proposer",
                None,
                f"an OpenAI-compatible proposer endpoint for method '{needing[0]}' (a local "
                "'hf' black box cannot propose instructions)",
                "add a proposer section with base_url and model, or use an endpoint black box "
                "(backend openai or simulated)",
            )

    def _check_tasks(self) -> None:
        from izero.tasks.loader import close_matches, list_tasks

        check(bool(self.tasks), "tasks", self.tasks, "at least one task name or task file")
        for entry in self.tasks:
            check(
                isinstance(entry, (str, TaskFileConfig)),
                "tasks",
                entry,
                "task names and task-file mappings (name, path, input, output, ...)",
            )
        names = self.task_names
        dupes = sorted({n for n in names if names.count(n) > 1})
        check(not dupes, "tasks", ", ".join(dupes), "no duplicates", "give each task its own name")
        named = [t for t in self.tasks if isinstance(t, str)]
        if not named:
            return
        try:
            known = list_tasks(self.data_dir)
        except TaskDataError as exc:
            raise ConfigError(
                "data_dir",
                self.data_dir,
                "a readable instruction-induction folder holding induce/<task>.json",
                f"{str(exc).split('. Fix:')[0]}; point data_dir (--data-dir) at e.g. "
                "../shared/data/instruction_induction, or leave it null for built-in tasks only",
            ) from exc
        where = (
            f"built-in tasks and files in {self.data_dir}"
            if self.data_dir is not None
            else "built-in tasks (no data_dir: file tasks need --data-dir)"
        )
        for task in named:
            if task not in known:
                hint = close_matches(task, known)
                fix = f"did you mean {' or '.join(repr(h) for h in hint)}? " if hint else ""
                raise ConfigError(
                    "tasks",
                    task,
                    f"a task from {where}",
                    fix + "`izero tasks [--data-dir DIR]` lists them",
                )

    def _check_generator_serves(self) -> None:
        """Refuse a method that needs generator features with an engine that cannot give them."""
        from izero.methods.registry import method_class

        needing = [m for m in self.methods if method_class(m).needs_features]
        if not needing:
            return
        from izero.generator.engines import ENGINES_SERVING_FEATURES

        check(
            self.generator.engine in ENGINES_SERVING_FEATURES,
            "generator.engine",
            self.generator.engine,
            f"an engine that computes generator features ({', '.join(ENGINES_SERVING_FEATURES)}) "
            f"for method {needing[0]}",
            f"set generator.engine: {ENGINES_SERVING_FEATURES[0]}, or drop {needing[0]} from "
            "methods",
        )

    def method_options_for(self, method: str) -> Any:
        """The options object of ``method`` (its ``options_class`` built from
        ``method_options[method]`` and validated), or ``None`` for a method without options."""
        from izero.config.loading import build_section
        from izero.methods.registry import method_class

        cls = method_class(method).options_class
        raw = self.method_options.get(method)
        if cls is None:
            check(
                not raw,
                f"method_options.{method}",
                raw,
                f"nothing: method '{method}' has no options",
                f"remove method_options.{method}",
            )
            return None
        return build_section(cls, raw or {}, f"method_options.{method}.")

    @property
    def task_names(self) -> tuple[str, ...]:
        """The names of ``tasks``, in order (a task file's ``name`` for its entry)."""
        return tuple(t if isinstance(t, str) else t.name for t in self.tasks)

    def metric_for(self, task: str) -> Any:
        """The metric of ``task`` in this sweep: a task file's own metric (a name, or a
        :class:`~izero.tasks.metrics.MetricSpec` with its extraction), else its override, else
        the upstream metric."""
        from izero.tasks.metrics import metric_for_task, metric_spec

        for entry in self.tasks:
            if isinstance(entry, TaskFileConfig) and entry.name == task:
                return metric_spec(entry.metric, entry.extract)
        return self.metric_overrides.get(task, metric_for_task(task))

    @property
    def output_path(self) -> str:
        """``output.path`` with ``{name}`` filled in."""
        return self.output.path.format(name=self.name)

    @property
    def n_runs(self) -> int:
        """Number of (task, method, seed) runs."""
        return len(self.tasks) * len(self.methods) * len(self.seeds)
