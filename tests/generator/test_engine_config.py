"""Choosing the engine: the sweep config's generator section and the engine options."""

from __future__ import annotations

import dataclasses
import importlib.util
import sys

import pytest

from izero.config import GeneratorConfig as GeneratorSection
from izero.config import load_config
from izero.errors import ConfigError, GeneratorError
from izero.generator import ENGINES, GeneratorConfig, build_engine
from izero.generator.engines import HFEngine, engine_class
from izero.generator.engines.vllm import VLLMEngine


def _error(overrides: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    return str(info.value)


def test_engine_choice_in_the_sweep_config() -> None:
    assert load_config().generator.engine == "hf"
    cfg = load_config(
        overrides=["generator.engine=vllm", "generator.vllm_max_model_len=512"]
    ).generator
    assert (cfg.engine, cfg.vllm_max_model_len, cfg.vllm_enforce_eager) == ("vllm", 512, True)
    assert "did you mean 'vllm'" in _error(["generator.engine=vlm"])
    assert "generator.device" in _error(["generator.engine=vllm", "generator.device=mps"])
    assert "(0, 1]" in _error(["generator.vllm_gpu_memory_utilization=1.5"])
    assert "vllm_max_model_len" in _error(["generator.vllm_max_model_len=0"])
    assert "did you mean 'static'" in _error(["generator.hf_cache_implementation=statc"])


def test_the_sweep_section_fields_are_engine_options() -> None:
    """Every engine field of the sweep section is an option of the engines' config."""
    section = {f.name for f in dataclasses.fields(GeneratorSection)}
    options = {f.name for f in dataclasses.fields(GeneratorConfig)}
    engine_fields = {
        "engine",
        "hf_cache_implementation",
        "vllm_max_model_len",
        "vllm_gpu_memory_utilization",
        "vllm_enforce_eager",
    }
    assert engine_fields <= section & options
    assert set(ENGINES) == {"hf", "vllm"}
    assert engine_class("hf") is HFEngine and engine_class("vllm") is VLLMEngine
    with pytest.raises(ConfigError, match=r"generator\.engine"):
        GeneratorConfig(engine="tgi")
    with pytest.raises(ConfigError, match=r"generator\.device"):
        GeneratorConfig(engine="vllm", device="cuda:1")


def test_missing_vllm_is_refused_naming_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    config = GeneratorConfig(engine="vllm")  # vllm is installed here
    real_find_spec = importlib.util.find_spec

    def find_spec(name: str, *args, **kwargs):
        return None if name == "vllm" else real_find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert "izero[vllm]" in _error(["generator.engine=vllm"])
    with pytest.raises(ConfigError, match=r"izero\[vllm\]"):
        GeneratorConfig(engine="vllm")
    monkeypatch.setitem(sys.modules, "vllm", None)  # the import itself fails in the actor
    with pytest.raises(GeneratorError, match=r"izero\[vllm\]"):
        build_engine(config)
