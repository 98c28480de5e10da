"""Typed, frozen, validated configuration of an izero sweep: one module per section.

A sweep runs every ``method`` on every ``task`` for every ``seed``. Its configuration is a tree
of frozen dataclasses, one per concern (``budget``, ``generator``, ``blackbox``, ``proposer``,
``optimizer``, ``output``, ``prompts``, ``data``, ``tracking``; task-file entries of ``tasks``),
each validated when it is built, so a bad value is refused before any work starts with one line
that names the field, the value, what is allowed and how to fix it
(:class:`izero.errors.ConfigError`).

Load it from YAML with dotted ``key=value`` overrides::

    cfg = load_config("jobs/configs/offline_demo.yaml", overrides=["budget.q=10"])

YAML mirrors the dataclasses::

    name: demo
    tasks: [sum, diff]
    seeds: [0, 1]
    methods: [instructzero, random]
    budget: {preset: demo, q: 10}     # a preset, then explicit fields override it
    # preset: instructzero-original   # a top-level preset sets several sections at once
    blackbox: {backend: simulated, rpm: 600}

Override values are parsed as YAML scalars (``budget.q=10`` is an int, ``data_dir=null`` is
None); list fields also accept comma-separated values (``tasks=sum,diff``, ``seeds=0,1,2``).
Relative paths (``data_dir``, ``output.path``) are relative to the working directory.
API keys are never part of the configuration: ``blackbox.api_key_env`` names the environment
variable that holds the key.
"""

from izero.config.blackbox import BlackBoxConfig, SimulatedServerConfig
from izero.config.budget import BUDGET_PRESETS, BudgetConfig
from izero.config.data import DataConfig
from izero.config.generator import GeneratorConfig
from izero.config.loading import config_from_dict, config_to_dict, load_config
from izero.config.optimizer import OptimizerConfig
from izero.config.output import OutputConfig
from izero.config.presets import SWEEP_PRESETS
from izero.config.prompts import PROMPT_PRESETS, PromptsConfig
from izero.config.proposer import ProposerConfig
from izero.config.sweep import DEFAULT_TASKS, SweepConfig
from izero.config.tasks import TaskFileConfig
from izero.config.tracking import MlflowConfig, TrackingConfig

__all__ = [
    "BUDGET_PRESETS",
    "DEFAULT_TASKS",
    "PROMPT_PRESETS",
    "SWEEP_PRESETS",
    "BlackBoxConfig",
    "BudgetConfig",
    "DataConfig",
    "GeneratorConfig",
    "MlflowConfig",
    "OptimizerConfig",
    "OutputConfig",
    "PromptsConfig",
    "ProposerConfig",
    "SimulatedServerConfig",
    "SweepConfig",
    "TaskFileConfig",
    "TrackingConfig",
    "config_from_dict",
    "config_to_dict",
    "load_config",
]
