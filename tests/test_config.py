"""Sweep configuration: YAML + overrides, presets, and one clear line per bad value."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from izero.config import (
    BUDGET_PRESETS,
    DEFAULT_TASKS,
    BudgetConfig,
    SweepConfig,
    config_from_dict,
    config_to_dict,
    load_config,
)
from izero.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _error(overrides: list[str], path: Path | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides=overrides)
    msg = str(info.value)
    assert "\n" not in msg
    return msg


def test_defaults_are_valid_and_offline() -> None:
    cfg = load_config()
    assert cfg.tasks == DEFAULT_TASKS and cfg.data_dir is None
    assert cfg.budget == BudgetConfig() and cfg.budget.n_evaluations == 25 + 5 * 25
    assert cfg.blackbox.backend == "simulated" and cfg.generator.model == "tiny:llama"
    assert cfg.output_path == "runs/izero-sweep"
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "x"  # type: ignore[misc]


def test_yaml_presets_and_overrides(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "name: t1\n"
        "tasks: [sum, diff]\n"
        "seeds: [0, 1]\n"
        "methods: [instructzero, random]\n"
        "budget: {preset: demo, q: 6}\n"
        "blackbox: {rpm: 120, simulated: {latency_s: 0.01}}\n"
    )
    cfg = load_config(path, overrides=["budget.n_dev=7", "blackbox.rpm=600", "seeds=3,4,5"])
    demo = BUDGET_PRESETS["demo"]
    assert cfg.budget.preset == "demo" and cfg.budget.n_init == demo["n_init"]
    assert (cfg.budget.q, cfg.budget.n_dev) == (6, 7)  # explicit fields beat the preset
    assert cfg.blackbox.rpm == 600.0 and isinstance(cfg.blackbox.rpm, float)
    assert cfg.blackbox.simulated.latency_s == 0.01
    assert cfg.seeds == (3, 4, 5) and cfg.tasks == ("sum", "diff")
    assert cfg.n_runs == 2 * 2 * 3 and cfg.output_path == "runs/t1"
    smoke = load_config(overrides=["budget.preset=smoke"]).budget
    assert (smoke.n_init, smoke.n_rounds, smoke.q, smoke.n_dev, smoke.n_test) == (4, 2, 4, 5, 10)
    paper = load_config(overrides=["budget.preset=paper"]).budget
    assert (paper.n_init, paper.n_rounds, paper.q, paper.n_dev, paper.n_test) == (
        25,
        5,
        25,
        20,
        100,
    )


def test_to_dict_is_json_safe_and_round_trips(data_dir: Path) -> None:
    cfg = load_config(
        overrides=[f"data_dir={data_dir}", "tasks=[sum, cs_algorithms]", "metric_overrides.sum=f1"]
    )
    data = config_to_dict(cfg)
    assert json.loads(json.dumps(data)) == data
    assert data["tasks"] == ["sum", "cs_algorithms"]
    assert cfg.metric_for("sum") == "f1" and cfg.metric_for("cs_algorithms") == "exact_match"
    assert config_from_dict(data) == cfg


def test_secret_headers_are_redacted() -> None:
    cfg = load_config(
        overrides=["blackbox.headers.Authorization=Bearer sk-123", "blackbox.headers.X-Team=a"]
    )
    headers = config_to_dict(cfg)["blackbox"]["headers"]
    assert headers == {"Authorization": "<redacted>", "X-Team": "a"}
    assert "sk-123" not in json.dumps(config_to_dict(cfg))
    msg = _error(["blackbox.headers.Api-Key=123"])
    assert "123" not in msg and "<redacted>" in msg


def test_unknown_task_lists_close_matches_and_where_tasks_come_from(data_dir: Path) -> None:
    msg = _error(["tasks=summ"])
    assert msg == (
        "config field 'tasks': got 'summ'; expected a task from built-in tasks (no data_dir: "
        "file tasks need --data-dir). Fix: did you mean 'sum'? `izero tasks [--data-dir DIR]` "
        "lists them"
    )
    msg = _error(["tasks=cs_algorithm", f"data_dir={data_dir}"])
    assert f"files in {data_dir}" in msg and "did you mean 'cs_algorithms'?" in msg
    assert "file tasks need --data-dir" in _error(["tasks=cs_algorithms"])


@pytest.mark.parametrize(
    ("override", "field", "value", "allowed"),
    [
        ("budget.q=-1", "budget.q", "-1", "a positive integer"),
        ("budget.n_init=0", "budget.n_init", "0", "a positive integer"),
        ("budget.n_rounds=-2", "budget.n_rounds", "-2", "an integer >= 0"),
        ("budget.n_dev=0", "budget.n_dev", "0", "a positive integer"),
        ("blackbox.rpm=0", "blackbox.rpm", "0.0", "a positive number or null (no limit)"),
        ("blackbox.temperature=3", "blackbox.temperature", "3.0", "a number in [0.0, 2.0]"),
        ("generator.intrinsic_dim=0", "generator.intrinsic_dim", "0", "a positive integer"),
        (
            "generator.device=gpu",
            "generator.device",
            "'gpu'",
            "auto, cpu, mps, cuda or cuda:<index>",
        ),
        ("optimizer.raw_samples=0", "optimizer.raw_samples", "0", "a positive integer"),
        ("seeds=-1", "seeds", "-1", "integers >= 0"),
    ],
)
def test_bad_numbers(override: str, field: str, value: str, allowed: str) -> None:
    msg = _error([override])
    assert msg.startswith(f"config field '{field}': got {value}; expected {allowed}. Fix: ")


def test_blackbox_gpus_only_for_a_local_model() -> None:
    msg = _error(["blackbox.num_gpus=1"])
    assert msg == (
        "config field 'blackbox.num_gpus': got 1.0; expected 0 unless backend is 'vllm' or 'hf' "
        "(only a local model runs on this cluster's GPUs). Fix: remove blackbox.num_gpus, or set "
        "blackbox.backend: vllm"
    )
    msg = _error(["blackbox.backend=hf", "blackbox.model=tiny:qwen2", "blackbox.num_gpus=-1"])
    assert msg.startswith("config field 'blackbox.num_gpus': got -1.0; expected a number of GPUs")


def test_budget_caps_refused_for_a_local_model() -> None:
    msg = _error(["blackbox.backend=hf", "blackbox.model=tiny:qwen2", "blackbox.max_calls=100"])
    assert msg == (
        "config field 'blackbox.max_calls': got 100; expected null for backend 'hf' (a local "
        "model has no token limit, bill or budget). Fix: remove blackbox.max_calls; caps apply "
        "to paid endpoints (backend openai)"
    )


def test_missing_endpoint_model_and_url() -> None:
    msg = _error(["blackbox.backend=openai"])
    assert msg == (
        "config field 'blackbox.model': got None; expected a model name for backend 'openai'. "
        "Fix: set blackbox.model, e.g. --set blackbox.model=gpt-4o-mini"
    )
    msg = _error(["blackbox.backend=openai", "blackbox.model=gpt-4o-mini"])
    assert msg.startswith(
        "config field 'blackbox.base_url': got None; expected the endpoint URL for backend 'openai'"
    )
    msg = _error(["blackbox.backend=hf"])
    assert "'blackbox.model'" in msg and "backend 'hf'" in msg
    ok = load_config(
        overrides=[
            "blackbox.backend=openai",
            "blackbox.model=m",
            "blackbox.base_url=http://127.0.0.1:8000/v1",
        ]
    )
    assert ok.blackbox.model == "m"
    assert "http:// or https://" in _error(["blackbox.base_url=ftp://x"])


def test_api_key_is_never_accepted_or_echoed() -> None:
    msg = _error(["blackbox.api_key_env=sk-secret-value-123"])
    assert "sk-secret-value-123" not in msg
    assert "NAME of an environment variable, not the key itself" in msg
    assert "'blackbox.api_key'" in _error(["blackbox.api_key=sk-abc"])
    assert "sk-abc" not in _error(["blackbox.api_key=sk-abc"])


def test_unknown_metric() -> None:
    msg = _error(["metric_overrides.sum=bleu"])
    assert msg == (
        "config field 'metric_overrides.sum': got 'bleu'; expected one of contains, exact_match, "
        "exact_set, f1, numeric, or a plug-in module:function. Fix: use one of those metric names"
    )
    assert "did you mean 'exact_set'?" in _error(["metric_overrides.sum=exact_sets"])
    assert "a task of this sweep" in _error(["metric_overrides.antonyms=f1"])


def test_unreadable_data_dir(tmp_path: Path) -> None:
    msg = _error([f"data_dir={tmp_path / 'missing'}"])
    assert msg.startswith(
        f"config field 'data_dir': got '{tmp_path / 'missing'}'; expected a readable"
    )
    assert "does not exist" in msg and "leave it null for built-in tasks only" in msg
    (tmp_path / "induce").write_text("a file, not a folder")
    assert "has no induce/ folder" in _error([f"data_dir={tmp_path}"])


def test_unknown_keys_suggest_the_closest_valid_key(tmp_path: Path) -> None:
    msg = _error(["budget.qq=3"])
    assert msg == (
        "config field 'budget.qq': got 'qq'; expected a known key of section 'budget' "
        "(preset, n_init, n_rounds, q, n_demos, n_dev, n_test). Fix: did you mean 'budget.q'?"
    )
    assert "did you mean 'generator'?" in _error(["genrator.model=x"])
    assert "did you mean 'blackbox.simulated.latency_s'?" in _error(
        ["blackbox.simulated.latency=1"]
    )
    path = tmp_path / "c.yaml"
    path.write_text("budjet:\n  q: 3\n")
    assert "did you mean 'budget'?" in _error([], path)


def test_wrong_types_and_choices() -> None:
    assert _error(["budget.q=ten"]).startswith(
        "config field 'budget.q': got 'ten'; expected an integer"
    )
    assert _error(["budget.q=2.5"]).startswith(
        "config field 'budget.q': got 2.5; expected an integer"
    )
    assert _error(["output.overwrite=maybe"]).startswith(
        "config field 'output.overwrite': got 'maybe'; expected true or false"
    )
    assert "did you mean 'smoke'?" in _error(["budget.preset=smok"])
    assert "did you mean 'random'?" in _error(["methods=instructzero,rando"])
    assert "did you mean 'matern'?" in _error(["optimizer.kernel=matérn"])
    assert "a mapping of budget fields" in _error(["budget=3"])
    assert "at least one task name" in _error(["tasks=[]"])
    assert "no duplicates" in _error(["tasks=sum,sum"])
    assert "only placeholder is {name}" in _error(["output.path=runs/{nme}"])
    assert "sum to at most 1" in _error(
        ["blackbox.simulated.error_rate=0.7", "blackbox.simulated.drop_rate=0.5"]
    )
    assert "key=value with a dotted key" in _error(["budget.q"])


def test_bad_yaml_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert _error([], missing).startswith(f"config field 'config file': got '{missing}'")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tasks: [sum\nname: x\n")
    assert "line 2" in _error([], bad)
    listy = tmp_path / "list.yaml"
    listy.write_text("- sum\n")
    assert "a YAML mapping at the top level" in _error([], listy)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == SweepConfig()


@pytest.mark.parametrize("name", ["offline_demo.yaml", "openai_example.yaml"])
def test_example_configs_load(name: str, data_dir: Path) -> None:
    path = REPO / "jobs" / "configs" / name
    cfg = load_config(path, overrides=[f"data_dir={data_dir}"] if "openai" in name else [])
    assert cfg.tasks and cfg.seeds
    if name == "offline_demo.yaml":
        assert cfg.blackbox.backend == "simulated" and cfg.budget.preset == "demo"
        from izero.methods import METHOD_NAMES

        # the demo runs every method izero has
        assert cfg.data_dir is None and set(cfg.methods) == set(METHOD_NAMES)
    else:
        assert cfg.blackbox.backend == "openai" and cfg.blackbox.model
