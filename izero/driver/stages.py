"""Building the sweep's stages from its config: the simulated server, the black box's scoring
pool (an endpoint, a vLLM server izero owns, or a local HF model), the proposer endpoint, the
generator pool and the GP proposal batcher. :class:`~izero.driver.backends.Backends` holds what
these return; nothing here runs a sweep.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from izero.config import BlackBoxConfig, PromptsConfig, SweepConfig
from izero.driver.proposals import ProposalBatcher
from izero.tasks import Task

#: API key the simulated server expects; it is a local test server, not a secret.
SIMULATED_API_KEY = "sk-izero-simulated"
#: Model name the simulated server reports.
SIMULATED_MODEL = "izero-sim"
#: Simulated 5xx faults: the config's ``error_rate`` is split evenly between these.
SIMULATED_5XX = ("500", "502", "503")


def prompt_template(p: PromptsConfig) -> Any:
    """The generator's :class:`~izero.generator.PromptTemplate` of the ``prompts`` section."""
    from izero.generator import PromptTemplate

    return PromptTemplate(
        demo_template=p.demo_template,
        demo_separator=p.demo_separator,
        prompt_template=p.generator_prompt,
        use_chat_template=p.use_chat_template,
        system_prompt=p.generator_system,
        clean=p.clean_instruction,
    )


def query_templates(p: PromptsConfig) -> dict[str, Any]:
    """The black box's :class:`~izero.blackbox.QueryTemplate` of each split (dev, test) of the
    ``prompts`` section."""
    from izero.blackbox import QueryTemplate

    return {
        split: QueryTemplate(text, system=p.query_system, strip_instruction=p.clean_instruction)
        for split, text in (("dev", p.dev_query), ("test", p.test_query))
    }


def start_simulated_server(config: SweepConfig, tasks: dict[str, Task]) -> Any:
    """Start the offline OpenAI-compatible endpoint on 127.0.0.1, knowing ``tasks``' answers
    and understanding the queries of ``config.prompts``."""
    from izero.blackbox import SimulatedOptions, SimulatedServer
    from izero.tasks.builtin import BUILTIN_TASKS

    sim = config.blackbox.simulated
    faults = {code: sim.error_rate / len(SIMULATED_5XX) for code in SIMULATED_5XX}
    faults.update(hang=sim.timeout_rate, malformed=sim.malformed_rate, drop=sim.drop_rate)
    server = SimulatedServer(
        tasks=list(tasks.values()),
        keywords={
            name: BUILTIN_TASKS[name].keywords
            for name, task in tasks.items()
            if task.source == "builtin" and name in BUILTIN_TASKS
        },
        options=SimulatedOptions(
            seed=sim.seed,
            model=config.blackbox.model or SIMULATED_MODEL,
            latency_s=sim.latency_s,
            rpm=sim.rpm,
            window_s=60.0,
            fault_rates={k: v for k, v in faults.items() if v > 0},
            hang_s=2 * config.blackbox.timeout_s,
            api_key=SIMULATED_API_KEY,
            query_templates=tuple(dict.fromkeys(query_templates(config.prompts).values())),
        ),
        in_subprocess=True,  # keeps a busy server off the driver's GIL
    )
    server.start()
    return server


def scoring_backend(config: SweepConfig, server: Any, cache_dir: Path) -> tuple[str, Any]:
    """The black box of ``config``: (model name, scorer with ``async score(...)``)."""
    bb = config.blackbox
    if bb.backend == "vllm":
        from izero.driver.vllm_blackbox import vllmscoring_backend

        return vllmscoring_backend(config, cache_dir)
    if bb.backend == "hf":
        from izero.blackbox import HFBlackBoxOptions, HFScorer

        options = HFBlackBoxOptions(
            model_path=bb.model,
            max_new_tokens=bb.max_tokens,
            device="cuda" if bb.num_gpus > 0 else "cpu",
            dtype="auto",
        )
        scorer = HFScorer(options, cache_dir=cache_dir, num_gpus=bb.num_gpus)
        return bb.model, scorer
    from izero.blackbox import ScoringPool

    if server is None:
        endpoint = endpoint_config(config)
    else:
        # its port changes from run to run, its answers do not: a resume hits the cache
        endpoint = endpoint_config(
            config,
            base_url=server.base_url,
            model=bb.model or SIMULATED_MODEL,
            api_key=SIMULATED_API_KEY,
            cache_url=f"simulated://seed={bb.simulated.seed}",
        )
    return endpoint.model, ScoringPool(endpoint, cache_dir=cache_dir)


def proposer_pool(config: SweepConfig, cache_dir: Path) -> tuple[str, Any]:
    """The sweep's separate ``proposer`` endpoint: (model name, pool with ``complete``)."""
    from izero.blackbox import EndpointConfig, ScoringPool

    p = config.proposer
    assert p is not None and p.base_url is not None and p.model is not None  # validated
    endpoint = EndpointConfig(
        base_url=p.base_url,
        model=p.model,
        api_key_env=p.api_key_env,
        headers=dict(p.headers),
        timeout_s=p.timeout_s,
        rpm=p.rpm,
        tpm=p.tpm,
        max_retries=p.max_retries,
        price_prompt_per_1k=p.price_per_1k_prompt,
        price_completion_per_1k=p.price_per_1k_completion,
        max_calls=p.max_calls,
        max_total_tokens=p.max_total_tokens,
        max_cost=p.max_cost,
        concurrency=p.concurrency,
    )
    # the same cache file as the black box's: keys name the endpoint, so they never collide
    return p.model, ScoringPool(endpoint, cache_dir=cache_dir)


def generator_pool(config: SweepConfig) -> Any:
    from izero.generator import GeneratorPool

    g = config.generator
    return GeneratorPool(
        num_actors=g.num_actors,
        model=g.model,
        dtype=g.dtype,
        device=g.device,
        max_new_tokens=g.max_new_tokens,
        n_prompt_tokens=g.n_prompt_tokens,
        intrinsic_dim=g.intrinsic_dim,
        projection_init=g.projection_init,
        projection_scale=g.projection_scale,
        batch_size=g.batch_size,
        engine=g.engine,
        hf_cache_implementation=g.hf_cache_implementation,
        vllm_max_model_len=g.vllm_max_model_len,
        vllm_gpu_memory_utilization=g.vllm_gpu_memory_utilization,
        vllm_enforce_eager=g.vllm_enforce_eager,
        template=prompt_template(config.prompts),
    )


def proposal_batcher(config: SweepConfig) -> ProposalBatcher:
    from izero.bo import ProposerOptions

    o = config.optimizer
    options = ProposerOptions(
        kernel=o.kernel,
        acquisition=o.acquisition,
        num_restarts=o.num_restarts,
        raw_samples=o.raw_samples,
    )
    return ProposalBatcher(options=options)


def any_method(config: SweepConfig, flag: str) -> bool:
    """Whether a method of the sweep sets the class flag ``flag`` (``llm_proposer``: asks an
    LLM to propose instructions; ``uses_generator``: needs the generator)."""
    from izero.methods.registry import method_class

    return any(getattr(method_class(m), flag) for m in config.methods)


def endpoint_fields(bb: BlackBoxConfig) -> dict[str, Any]:
    """The :class:`EndpointConfig` fields a ``blackbox`` section sets, other than the address,
    model, key and cache identity (limits, retries, prices and caps apply to every backend)."""
    return {
        "api_key_env": bb.api_key_env,
        "temperature": bb.temperature,
        "max_tokens": bb.max_tokens,
        "max_tokens_param": bb.max_tokens_param,
        "headers": dict(bb.headers),
        "timeout_s": bb.timeout_s,
        "rpm": bb.rpm,
        "tpm": bb.tpm,
        "max_retries": bb.max_retries,
        "price_prompt_per_1k": bb.price_per_1k_prompt,
        "price_completion_per_1k": bb.price_per_1k_completion,
        "max_calls": bb.max_calls,
        "max_total_tokens": bb.max_total_tokens,
        "max_cost": bb.max_cost,
        "concurrency": bb.concurrency,
        "outage_allowance_s": bb.outage_allowance_s,
    }


def endpoint_config(
    config: SweepConfig,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key: str | None = None,
    cache_url: str | None = None,
) -> Any:
    """The :class:`~izero.blackbox.EndpointConfig` of ``config``'s black box (``base_url``,
    ``model``, ``api_key``: e.g. the simulated server's, instead of the config's)."""
    from izero.blackbox import EndpointConfig

    bb = config.blackbox
    return EndpointConfig(
        base_url=base_url or bb.base_url,
        model=model or bb.model,
        api_key=api_key,
        cache_url=cache_url,
        **endpoint_fields(bb),
    )
