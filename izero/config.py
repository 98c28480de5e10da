"""Typed, frozen, validated configuration of an izero sweep.

A sweep runs every ``method`` on every ``task`` for every ``seed``. Its configuration is a tree
of frozen dataclasses, one per concern (``budget``, ``generator``, ``blackbox``, ``optimizer``,
``output``), each validated when it is built, so a bad value is refused before any work starts
with one line that names the field, the value, what is allowed and how to fix it
(:class:`izero.errors.ConfigError`).

Load it from YAML with dotted ``key=value`` overrides::

    cfg = load_config("jobs/configs/offline_demo.yaml", overrides=["budget.q=10"])

YAML mirrors the dataclasses::

    name: demo
    tasks: [sum, diff]
    seeds: [0, 1]
    methods: [instructzero, random]
    budget: {preset: demo, q: 10}     # a preset, then explicit fields override it
    blackbox: {backend: simulated, rpm: 600}

Override values are parsed as YAML scalars (``budget.q=10`` is an int, ``data_dir=null`` is
None); list fields also accept comma-separated values (``tasks=sum,diff``, ``seeds=0,1,2``).
Relative paths (``data_dir``, ``output.path``) are relative to the working directory.
API keys are never part of the configuration: ``blackbox.api_key_env`` names the environment
variable that holds the key.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from izero.errors import ConfigError, TaskDataError

# ----------------------------------------------------------------------------- constants

#: Methods a sweep can compare.
METHODS: tuple[str, ...] = ("instructzero", "random", "ape", "manual")

DEFAULT_NAME = "izero-sweep"
#: Built-in tasks, so that the default configuration runs offline with nothing but the repo.
DEFAULT_TASKS: tuple[str, ...] = ("sum", "diff", "first_word_letter")
DEFAULT_SEEDS: tuple[int, ...] = (0,)
DEFAULT_METHODS: tuple[str, ...] = ("instructzero",)

# Budget (InstructZero paper: 25 Sobol points, then 5 rounds of 25; 5 demos; 20 dev; 100 test).
DEFAULT_N_INIT = 25
DEFAULT_N_ROUNDS = 5
DEFAULT_Q = 25
DEFAULT_N_DEMOS = 5
DEFAULT_N_DEV = 20
DEFAULT_N_TEST = 100

#: Budget presets, selected with ``budget.preset``; explicit budget fields override them.
BUDGET_PRESETS: Mapping[str, Mapping[str, int]] = {
    # The paper's budget.
    "paper": {"n_init": 25, "n_rounds": 5, "q": 25, "n_demos": 5, "n_dev": 20, "n_test": 100},
    # Tiny: for tests and CI.
    "smoke": {"n_init": 4, "n_rounds": 2, "q": 4, "n_demos": 5, "n_dev": 5, "n_test": 10},
    # A few minutes on 2 CPU cores with the tiny generator and the simulated black box.
    "demo": {"n_init": 8, "n_rounds": 3, "q": 8, "n_demos": 5, "n_dev": 10, "n_test": 20},
}

# Generator.
#: A tiny random-weight Llama built offline (``izero.hf.tiny``); any HF id or local path works.
DEFAULT_GENERATOR_MODEL = "tiny:llama"
DEFAULT_DTYPE = "auto"
DEFAULT_DEVICE = "auto"
DEFAULT_MAX_NEW_TOKENS = 32
DEFAULT_N_PROMPT_TOKENS = 5
DEFAULT_INTRINSIC_DIM = 10
DEFAULT_PROJECTION_INIT = "uniform"
DEFAULT_PROJECTION_SCALE = 1.0
DEFAULT_GENERATOR_BATCH_SIZE = 64
DEFAULT_APE_TEMPERATURE = 1.0

# Black box.
DEFAULT_BACKEND = "simulated"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"
DEFAULT_TEMPERATURE = 0.0
DEFAULT_MAX_TOKENS = 64
#: Requests per minute across all workers (a conservative default for paid endpoints).
DEFAULT_RPM = 600.0
DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_RETRIES = 6
DEFAULT_CONCURRENCY = 32
DEFAULT_SIM_LATENCY_S = 0.05
DEFAULT_SIM_SEED = 0

# Optimizer.
DEFAULT_KERNEL = "instruction_coupled"
DEFAULT_ACQUISITION = "qlogei"
# izero's batched acquisition optimiser starts from its best raw batches (izero.bo.ProposerOptions)
DEFAULT_NUM_RESTARTS = 1
DEFAULT_RAW_SAMPLES = 32

# Output.
DEFAULT_OUTPUT_PATH = "runs/{name}"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SECRET_HEADER_RE = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)
_REDACTED = "<redacted>"

# ----------------------------------------------------------------------------- checks


def _check(ok: bool, field_name: str, value: object, allowed: str, fix: str | None = None) -> None:
    if not ok:
        raise ConfigError(field_name, value, allowed, fix or f"set {field_name} to {allowed}")


def _num(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(section: str, name: str, value: object, low: int) -> None:
    what = "a positive integer" if low == 1 else f"an integer >= {low}"
    _check(
        isinstance(value, int) and not isinstance(value, bool) and value >= low,
        f"{section}{name}",
        value,
        what,
    )


def _opt_positive(section: str, name: str, value: object) -> None:
    _check(
        value is None or (_num(value) and value > 0),
        f"{section}{name}",
        value,
        "a positive number or null (no limit)",
    )


def _in_range(section: str, name: str, value: object, low: float, high: float) -> None:
    _check(
        _num(value) and low <= value <= high,
        f"{section}{name}",
        value,
        f"a number in [{low}, {high}]",
    )


# ----------------------------------------------------------------------------- sections


@dataclass(frozen=True)
class BudgetConfig:
    """How many instructions each (task, method, seed) may evaluate, and split sizes.

    Evaluations per run: ``n_init + n_rounds * q`` instructions, each scored on ``n_dev``
    examples; the best is scored on up to ``n_test`` test examples. ``preset`` records the
    preset the values started from (:data:`BUDGET_PRESETS`), if any.
    """

    _SECTION: ClassVar[str] = "budget."

    preset: Literal["paper", "smoke", "demo"] | None = None
    n_init: int = DEFAULT_N_INIT
    n_rounds: int = DEFAULT_N_ROUNDS
    q: int = DEFAULT_Q
    n_demos: int = DEFAULT_N_DEMOS
    n_dev: int = DEFAULT_N_DEV
    n_test: int = DEFAULT_N_TEST

    def __post_init__(self) -> None:
        s = self._SECTION
        _int_at_least(s, "n_init", self.n_init, 1)
        _int_at_least(s, "n_rounds", self.n_rounds, 0)
        for name in ("q", "n_demos", "n_dev", "n_test"):
            _int_at_least(s, name, getattr(self, name), 1)

    @property
    def n_evaluations(self) -> int:
        """Instructions evaluated per (task, method, seed): ``n_init + n_rounds * q``."""
        return self.n_init + self.n_rounds * self.q


@dataclass(frozen=True)
class GeneratorConfig:
    """The open-source LLM that turns soft prompts into instructions.

    ``model``: any Hugging Face id or local path, or ``tiny:<arch>`` for a tiny random model.
    ``n_prompt_tokens`` soft tokens are projected from an ``intrinsic_dim``-dimensional ``z`` by
    a fixed random matrix initialised ``projection_init`` (``uniform``: U(-s, s); ``normal``:
    N(0, s^2); s = ``projection_scale``). ``num_actors``: generator actors (None: one per GPU,
    or 1 on CPU). ``ape_samples``: instructions the APE baseline samples at ``ape_temperature``
    (None: the same number as the budget's evaluations).
    """

    _SECTION: ClassVar[str] = "generator."

    model: str = DEFAULT_GENERATOR_MODEL
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = DEFAULT_DTYPE
    device: str = DEFAULT_DEVICE
    max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS
    n_prompt_tokens: int = DEFAULT_N_PROMPT_TOKENS
    intrinsic_dim: int = DEFAULT_INTRINSIC_DIM
    projection_init: Literal["uniform", "normal"] = DEFAULT_PROJECTION_INIT
    projection_scale: float = DEFAULT_PROJECTION_SCALE
    num_actors: int | None = None
    batch_size: int = DEFAULT_GENERATOR_BATCH_SIZE
    ape_temperature: float = DEFAULT_APE_TEMPERATURE
    ape_samples: int | None = None

    def __post_init__(self) -> None:
        s = self._SECTION
        _check(
            bool(self.model.strip()),
            f"{s}model",
            self.model,
            "a Hugging Face model id, a local path or tiny:<arch>",
        )
        _check(
            bool(_DEVICE_RE.match(self.device)),
            f"{s}device",
            self.device,
            "auto, cpu, mps, cuda or cuda:<index>",
        )
        for name in ("max_new_tokens", "n_prompt_tokens", "intrinsic_dim", "batch_size"):
            _int_at_least(s, name, getattr(self, name), 1)
        _check(
            _num(self.projection_scale) and self.projection_scale > 0,
            f"{s}projection_scale",
            self.projection_scale,
            "a positive number",
        )
        _check(
            _num(self.ape_temperature) and self.ape_temperature >= 0,
            f"{s}ape_temperature",
            self.ape_temperature,
            "a number >= 0",
        )
        if self.num_actors is not None:
            _int_at_least(s, "num_actors", self.num_actors, 1)
        if self.ape_samples is not None:
            _int_at_least(s, "ape_samples", self.ape_samples, 1)


@dataclass(frozen=True)
class SimulatedServerConfig:
    """The offline simulated black box served over HTTP on 127.0.0.1 (demo, tests, benchmarks).

    ``latency_s``: seconds per response; ``rpm``: requests per minute the *server* enforces
    (429 above it; None = unlimited); fault rates are probabilities per request of a 5xx reply
    (``error_rate``), a reply slower than the client timeout (``timeout_rate``), an unparsable
    body (``malformed_rate``) and a dropped connection (``drop_rate``); ``seed`` fixes them.
    """

    _SECTION: ClassVar[str] = "blackbox.simulated."

    latency_s: float = DEFAULT_SIM_LATENCY_S
    rpm: float | None = None
    error_rate: float = 0.0
    timeout_rate: float = 0.0
    malformed_rate: float = 0.0
    drop_rate: float = 0.0
    seed: int = DEFAULT_SIM_SEED

    def __post_init__(self) -> None:
        s = self._SECTION
        _check(
            _num(self.latency_s) and self.latency_s >= 0,
            f"{s}latency_s",
            self.latency_s,
            "a number of seconds >= 0",
        )
        _opt_positive(s, "rpm", self.rpm)
        rates = ("error_rate", "timeout_rate", "malformed_rate", "drop_rate")
        for name in rates:
            _in_range(s, name, getattr(self, name), 0.0, 1.0)
        total = sum(getattr(self, n) for n in rates)
        _check(
            total <= 1.0,
            f"{s}error_rate+timeout_rate+malformed_rate+drop_rate",
            total,
            "a total fault probability <= 1",
            "lower the fault rates so that they sum to at most 1",
        )
        _int_at_least(s, "seed", self.seed, 0)


@dataclass(frozen=True)
class BlackBoxConfig:
    """The black-box LLM that answers under each instruction.

    ``backend``: ``simulated`` (offline, :class:`SimulatedServerConfig`), ``openai`` (any
    OpenAI-compatible chat-completions endpoint at ``base_url``; needs ``model``) or ``hf`` (a
    local Hugging Face ``model`` in a Ray actor). The API key is read from the environment
    variable ``api_key_env`` at run time and never stored. Limits: ``rpm`` requests and ``tpm``
    tokens per minute across all workers (None: no limit), ``timeout_s`` seconds per request,
    ``max_retries`` retries of a transient failure, ``concurrency`` requests in flight. Prices
    are per 1000 tokens; ``max_calls``, ``max_total_tokens`` and ``max_cost`` stop a sweep
    before it spends more (None: no cap). ``num_gpus`` (backend ``hf`` only): GPUs for the
    model's actor, 0 = CPU; a fraction such as 0.5 shares a GPU with a generator actor.
    """

    _SECTION: ClassVar[str] = "blackbox."

    backend: Literal["simulated", "openai", "hf"] = DEFAULT_BACKEND
    base_url: str | None = None
    model: str | None = None
    api_key_env: str = DEFAULT_API_KEY_ENV
    temperature: float = DEFAULT_TEMPERATURE
    max_tokens: int = DEFAULT_MAX_TOKENS
    rpm: float | None = DEFAULT_RPM
    tpm: float | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_retries: int = DEFAULT_MAX_RETRIES
    headers: dict[str, str] = field(default_factory=dict)
    price_per_1k_prompt: float = 0.0
    price_per_1k_completion: float = 0.0
    max_calls: int | None = None
    max_total_tokens: int | None = None
    max_cost: float | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    num_gpus: float = 0.0
    simulated: SimulatedServerConfig = field(default_factory=SimulatedServerConfig)

    def __post_init__(self) -> None:
        s = self._SECTION
        if self.backend in ("openai", "hf"):
            example = "gpt-4o-mini" if self.backend == "openai" else "Qwen/Qwen2.5-0.5B-Instruct"
            _check(
                bool(self.model and self.model.strip()),
                f"{s}model",
                self.model,
                f"a model name for backend '{self.backend}'",
                f"set blackbox.model, e.g. --set blackbox.model={example}",
            )
        if self.backend == "openai":
            _check(
                self.base_url is not None,
                f"{s}base_url",
                self.base_url,
                "the endpoint URL for backend 'openai'",
                "set blackbox.base_url, e.g. https://api.openai.com/v1 or "
                "http://127.0.0.1:8000/v1 for a local vLLM server",
            )
        if self.base_url is not None:
            _check(
                self.base_url.startswith(("http://", "https://")),
                f"{s}base_url",
                self.base_url,
                "an http:// or https:// URL",
            )
        looks_like_key = (
            self.api_key_env.startswith(("sk-", "Bearer")) or len(self.api_key_env) > 64
        )
        _check(
            not looks_like_key,
            f"{s}api_key_env",
            _REDACTED,
            "the NAME of an environment variable, not the key itself",
            "export the key, e.g. OPENAI_API_KEY=..., and set api_key_env: OPENAI_API_KEY",
        )
        _check(
            bool(_ENV_NAME_RE.match(self.api_key_env)),
            f"{s}api_key_env",
            self.api_key_env,
            "an environment variable name such as OPENAI_API_KEY",
        )
        _in_range(s, "temperature", self.temperature, 0.0, 2.0)
        _int_at_least(s, "max_tokens", self.max_tokens, 1)
        _opt_positive(s, "rpm", self.rpm)
        _opt_positive(s, "tpm", self.tpm)
        _check(
            _num(self.timeout_s) and self.timeout_s > 0,
            f"{s}timeout_s",
            self.timeout_s,
            "a positive number of seconds",
        )
        _int_at_least(s, "max_retries", self.max_retries, 0)
        _int_at_least(s, "concurrency", self.concurrency, 1)
        for name in ("price_per_1k_prompt", "price_per_1k_completion"):
            value = getattr(self, name)
            _check(_num(value) and value >= 0, f"{s}{name}", value, "a price >= 0")
        for name in ("max_calls", "max_total_tokens"):
            if getattr(self, name) is not None:
                _int_at_least(s, name, getattr(self, name), 1)
        _opt_positive(s, "max_cost", self.max_cost)
        _check(
            _num(self.num_gpus) and self.num_gpus >= 0,
            f"{s}num_gpus",
            self.num_gpus,
            "a number of GPUs >= 0 (a fraction shares one)",
        )
        if self.backend == "hf":  # a local model: neither billed nor capped, say so
            for name in ("tpm", "max_calls", "max_total_tokens", "max_cost"):
                _check(
                    getattr(self, name) is None,
                    f"{s}{name}",
                    getattr(self, name),
                    "null for backend 'hf' (a local model has no token limit, bill or budget)",
                    f"remove blackbox.{name}; caps apply to paid endpoints (backend openai)",
                )
        _check(
            self.num_gpus == 0 or self.backend == "hf",
            f"{s}num_gpus",
            self.num_gpus,
            "0 unless backend is 'hf' (only a local model runs on this cluster's GPUs)",
            "remove blackbox.num_gpus, or set blackbox.backend: hf",
        )


@dataclass(frozen=True)
class OptimizerConfig:
    """Bayesian optimisation: GP kernel, acquisition function and its optimiser.

    ``kernel``: ``instruction_coupled`` (InstructZero) or plain ``matern`` (Matern-5/2 on z);
    ``acquisition``: ``qlogei`` or ``qlognei``; ``num_restarts``/``raw_samples``: candidate
    batches refined / scored per task by izero's batched acquisition optimiser;
    ``seed_offset`` is added to the sweep seed for BO's own draws.
    """

    _SECTION: ClassVar[str] = "optimizer."

    kernel: Literal["instruction_coupled", "matern"] = DEFAULT_KERNEL
    acquisition: Literal["qlogei", "qlognei"] = DEFAULT_ACQUISITION
    num_restarts: int = DEFAULT_NUM_RESTARTS
    raw_samples: int = DEFAULT_RAW_SAMPLES
    seed_offset: int = 0

    def __post_init__(self) -> None:
        s = self._SECTION
        _int_at_least(s, "num_restarts", self.num_restarts, 1)
        _int_at_least(s, "raw_samples", self.raw_samples, 1)
        _check(
            self.raw_samples >= self.num_restarts,
            f"{s}raw_samples",
            self.raw_samples,
            f"at least num_restarts ({self.num_restarts})",
        )
        _int_at_least(s, "seed_offset", self.seed_offset, 0)


@dataclass(frozen=True)
class OutputConfig:
    """Where results go: a local path or any ``pyarrow.fs`` URI (``s3://bucket/prefix``).

    ``{name}`` in ``path`` is replaced by the sweep name. ``overwrite=False`` refuses to write
    over a finished sweep (a killed one is resumed).
    """

    _SECTION: ClassVar[str] = "output."

    path: str = DEFAULT_OUTPUT_PATH
    overwrite: bool = False

    def __post_init__(self) -> None:
        ok = bool(self.path.strip())
        if ok:
            try:
                self.path.format(name="x")
            except (KeyError, IndexError, ValueError):
                ok = False
        _check(
            ok,
            f"{self._SECTION}path",
            self.path,
            "a non-empty local path or URI whose only placeholder is {name}",
        )


@dataclass(frozen=True)
class SweepConfig:
    """A whole sweep: every method on every task for every seed.

    ``tasks``: built-in task names, plus task files of ``data_dir`` when it is given (a file
    task wins over a built-in task of the same name). ``metric_overrides`` maps a task to a
    metric other than its upstream one.
    """

    name: str = DEFAULT_NAME
    tasks: tuple[str, ...] = DEFAULT_TASKS
    data_dir: str | None = None
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    methods: tuple[str, ...] = DEFAULT_METHODS
    metric_overrides: dict[str, str] = field(default_factory=dict)
    budget: BudgetConfig = field(default_factory=BudgetConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    blackbox: BlackBoxConfig = field(default_factory=BlackBoxConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        _check(
            bool(_NAME_RE.match(self.name)),
            "name",
            self.name,
            "letters, digits, '_', '.' or '-' (it names the output folder)",
        )
        _check(bool(self.seeds), "seeds", self.seeds, "at least one seed")
        for seed in self.seeds:
            _check(
                isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
                "seeds",
                seed,
                "integers >= 0",
            )
        _check(len(set(self.seeds)) == len(self.seeds), "seeds", self.seeds, "distinct seeds")
        _check(bool(self.methods), "methods", self.methods, f"one or more of {', '.join(METHODS)}")
        for method in self.methods:
            hint = difflib.get_close_matches(method, METHODS, n=1)
            _check(
                method in METHODS,
                "methods",
                method,
                f"one of {', '.join(METHODS)}",
                f"did you mean '{hint[0]}'?" if hint else "use one of those names",
            )
        _check(
            len(set(self.methods)) == len(self.methods), "methods", self.methods, "no duplicates"
        )
        self._check_tasks()
        from izero.tasks.metrics import METRICS

        for task, metric in self.metric_overrides.items():
            _check(
                task in self.tasks,
                f"metric_overrides.{task}",
                task,
                f"a task of this sweep ({', '.join(self.tasks)})",
                "add the task to tasks or remove the override",
            )
            hint = difflib.get_close_matches(metric, list(METRICS), n=1)
            _check(
                metric in METRICS,
                f"metric_overrides.{task}",
                metric,
                f"one of {', '.join(sorted(METRICS))}",
                f"did you mean '{hint[0]}'?" if hint else "use one of those metric names",
            )

    def _check_tasks(self) -> None:
        from izero.tasks.loader import close_matches, list_tasks

        _check(bool(self.tasks), "tasks", self.tasks, "at least one task name")
        _check(len(set(self.tasks)) == len(self.tasks), "tasks", self.tasks, "no duplicates")
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
        for task in self.tasks:
            if task not in known:
                hint = close_matches(task, known)
                fix = f"did you mean {' or '.join(repr(h) for h in hint)}? " if hint else ""
                raise ConfigError(
                    "tasks",
                    task,
                    f"a task from {where}",
                    fix + "`izero tasks [--data-dir DIR]` lists them",
                )

    def metric_for(self, task: str) -> str:
        """The metric of ``task`` in this sweep: its override, else the upstream metric."""
        from izero.tasks.metrics import metric_for_task

        return self.metric_overrides.get(task, metric_for_task(task))

    @property
    def output_path(self) -> str:
        """``output.path`` with ``{name}`` filled in."""
        return self.output.path.format(name=self.name)

    @property
    def n_runs(self) -> int:
        """Number of (task, method, seed) runs."""
        return len(self.tasks) * len(self.methods) * len(self.seeds)


# ----------------------------------------------------------------------------- loading


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert a YAML value to type ``tp`` or raise a ConfigError naming ``path``."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        _check(isinstance(value, Mapping), path, value, f"a mapping of {path} fields")
        return _build(tp, value, path + ".")
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _convert(value, args[0], path)
    if origin is Literal:
        choices = get_args(tp)
        shown = ", ".join(str(c) for c in choices if c is not None)
        hint = difflib.get_close_matches(str(value), [str(c) for c in choices if c], n=1)
        _check(
            value in choices,
            path,
            value,
            f"one of {shown}",
            f"did you mean '{hint[0]}'?" if hint else f"use one of {shown}",
        )
        return value
    if origin is tuple:
        (elem,) = get_args(tp)[:1]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
            if elem is not str:
                value = [yaml.safe_load(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and elem is not str:
            value = [value]
        _check(isinstance(value, (list, tuple)), path, value, f"a list of {_type_name(elem)}s")
        return tuple(_convert(v, elem, path) for v in value)
    if origin is dict:
        _, val_tp = get_args(tp)
        _check(isinstance(value, Mapping), path, value, "a mapping")
        out = {}
        for k, v in value.items():
            try:
                out[str(k)] = _convert(v, val_tp, f"{path}.{k}")
            except ConfigError as exc:
                if not _SECRET_HEADER_RE.search(str(k)):
                    raise
                raise ConfigError(exc.field, _REDACTED, exc.allowed, exc.fix) from None
        return out
    if tp is bool:
        _check(isinstance(value, bool), path, value, "true or false")
    elif tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), path, value, "an integer")
    elif tp is float:
        _check(_num(value), path, value, "a number")
        value = float(value)
    elif tp is str:
        _check(isinstance(value, str), path, value, "a string")
    return value


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    hints = get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), fields, n=1)
            where = f"section '{prefix[:-1]}'" if prefix else "the top level"
            raise ConfigError(
                f"{prefix}{key}",
                key,
                f"a known key of {where} ({', '.join(fields)})",
                f"did you mean '{prefix}{hint[0]}'?" if hint else "remove or rename the key",
            )
    values = dict(raw)
    if cls is BudgetConfig and values.get("preset") is not None:
        preset = _convert(values["preset"], hints["preset"], f"{prefix}preset")
        values = {**BUDGET_PRESETS[preset], **values}
    kwargs = {key: _convert(val, hints[key], f"{prefix}{key}") for key, val in values.items()}
    return cls(**kwargs)


def _parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    _check(
        bool(sep) and bool(key) and all(key.split(".")),
        "--set",
        item,
        "key=value with a dotted key, e.g. budget.q=10",
    )
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key.split("."), value


def _apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    for item in overrides:
        keys, value = _parse_override(item)
        node = raw
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if child is None:
                child = node[key] = {}
            _check(
                isinstance(child, dict),
                ".".join(keys[: i + 1]),
                child,
                "a section (mapping) to set sub-keys on",
            )
            node = child
        node[keys[-1]] = value
    return raw


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            "config file", str(p), "a readable YAML file", f"check the path ({exc.strerror})"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            "config file", str(p), "valid YAML", f"fix the syntax{where}: {problem}"
        ) from exc
    if data is None:
        return {}
    _check(isinstance(data, dict), "config file", str(p), "a YAML mapping at the top level")
    return data


def config_from_dict(raw: Mapping[str, Any], *, overrides: Iterable[str] = ()) -> SweepConfig:
    """Build and validate a :class:`SweepConfig` from a plain mapping plus overrides."""
    data = _apply_overrides(dict(raw), overrides)
    return _build(SweepConfig, data, "")


def load_config(path: str | Path | None = None, *, overrides: Iterable[str] = ()) -> SweepConfig:
    """Load a sweep configuration from YAML (or the defaults), apply ``key=value`` overrides.

    Raises:
        ConfigError: one line naming the field, the value, what is allowed and the fix.
    """
    raw = _read_yaml(path) if path is not None else {}
    return config_from_dict(raw, overrides=overrides)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def config_to_dict(cfg: SweepConfig) -> dict[str, Any]:
    """A JSON-safe dict of ``cfg`` (for provenance); header values that look secret are redacted.

    ``config_from_dict(config_to_dict(cfg)) == cfg`` for configs without redacted headers.
    """
    data = _jsonable(dataclasses.asdict(cfg))
    headers = data["blackbox"]["headers"]
    for key in headers:
        if _SECRET_HEADER_RE.search(key):
            headers[key] = _REDACTED
    return data
