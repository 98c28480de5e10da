"""The vLLM engine: offline ``vllm.LLM`` generating from prompt embeddings.

The engine reads, in its own process, the tokenizer and the input-embedding table of the model
folder (:func:`izero.hf.checkpoint.load_input_embeddings`), builds every row exactly as the HF
engine does (:class:`~izero.generator.engines.base.GeneratorEngine`: ``[A z; token
embeddings]``) and hands vLLM ``{"prompt_embeds": tensor[seq, hidden]}`` prompts. vLLM starts
its engine core as a child process while :class:`VLLMEngine` is constructed, so build it inside
the process that owns the accelerator (the generator actor) or under ``if __name__ ==
"__main__":``.

Greedy decoding in float32 gives token for token what the HF engine gives (tested on the tiny
models on CPU). Sampled requests use vLLM's per-request seed
(:func:`~izero.generator.model.request_sample_seed`): reproducible and independent of the
batch, but not the HF engine's draws. Features (hidden states) are not served: vLLM returns
hidden states only from a pooling-runner model, a second copy of the weights beside the
generating one; :meth:`VLLMEngine.features` says to use the ``hf`` engine.

Everything vLLM writes (its cache, the rendezvous files it leaves in the temp dir, a saved
``tiny:`` model) goes to one private folder that :meth:`VLLMEngine.close` removes. On a CPU-only
machine the KV cache takes :data:`DEFAULT_CPU_KV_CACHE_GIB` unless ``VLLM_CPU_KVCACHE_SPACE`` is
set. vLLM's CPU attention supports head sizes 32, 64, 80, ... (not 16).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from izero.errors import GeneratorError
from izero.generator.engines.base import GeneratorEngine, strip_after_eos
from izero.generator.model import (
    VLLM_EXTRA_HINT,
    FeatureRequest,
    GenerationRequest,
    GeneratorConfig,
    request_sample_seed,
)
from izero.hf.checkpoint import load_input_embeddings, resolve_model_dir
from izero.hf.loading import TINY_PREFIX, prepare_tokenizer, resolve_device, resolve_dtype

logger = logging.getLogger(__name__)

DEFAULT_CPU_KV_CACHE_GIB = 1
"""KV cache of the CPU build (GiB; ``VLLM_CPU_KVCACHE_SPACE``) unless the environment sets it."""

EXECUTOR_BACKEND = "uni"
"""One engine per accelerator: vLLM's single-process executor (no extra worker process)."""

ENGINE_SEED = 0
"""vLLM's global seed (greedy decoding does not use it; sampled requests carry their own)."""

CHAT_WARMUP_LOGGER = "vllm.renderers.base"
CHAT_WARMUP_MESSAGE = "Chat template warmup failed"

_DTYPE_NAMES = {torch.float32: "float32", torch.bfloat16: "bfloat16", torch.float16: "float16"}


class VLLMEngine(GeneratorEngine):
    """A vLLM engine turning soft prompts into instructions (no features).

    Args:
        config: the options (``engine`` must be ``"vllm"``). ``model`` is a folder, an id in
            the local Hugging Face cache, or ``tiny:<arch>[?...]`` (saved to a private folder
            first; vLLM needs files).
        llm_options: further keyword arguments of ``vllm.LLM`` (they override izero's).
    """

    name = "vllm"
    serves_features = False

    def __init__(
        self, config: GeneratorConfig, *, llm_options: Mapping[str, Any] | None = None
    ) -> None:
        if config.engine != self.name:
            raise GeneratorError(f"VLLMEngine got a config for engine {config.engine!r}")
        try:
            import vllm
        except ImportError as exc:
            raise GeneratorError(
                f"generator.engine 'vllm' needs the vllm package ({exc}); {VLLM_EXTRA_HINT}"
            ) from exc
        self.llm: Any = None
        self.workdir = Path(tempfile.mkdtemp(prefix="izero-vllm-"))
        try:
            self._start(vllm, config, dict(llm_options or {}))
        except BaseException:
            self.close()
            raise

    def _start(self, vllm: Any, config: GeneratorConfig, llm_options: dict[str, Any]) -> None:
        from transformers import AutoConfig

        device = resolve_device(config.device)
        dtype = resolve_dtype(config.dtype, device=device)
        if dtype not in _DTYPE_NAMES:
            raise GeneratorError(f"the vllm engine cannot run dtype {dtype}")
        folder, tokenizer = self._model_folder(config)
        self.model_dir = folder
        model_config = AutoConfig.from_pretrained(folder)
        self._table = load_input_embeddings(folder, dtype=dtype)
        max_positions = _max_positions(model_config)
        max_model_len = config.vllm_max_model_len or max_positions
        if max_positions is not None and max_model_len is not None:
            max_model_len = min(max_model_len, max_positions)
        self._setup(
            config,
            tokenizer=tokenizer,
            hidden_size=int(self._table.shape[1]),
            dtype=dtype,
            device=torch.device("cpu"),
            embedding_std=float(self._table.float().std()),
            max_positions=max_model_len,
            model_eos=_generation_eos(folder, model_config),
        )
        options: dict[str, Any] = {
            "model": str(folder),
            "skip_tokenizer_init": True,
            "enable_prompt_embeds": True,
            "dtype": _DTYPE_NAMES[dtype],
            "max_model_len": max_model_len,
            "enforce_eager": config.vllm_enforce_eager,
            "gpu_memory_utilization": config.vllm_gpu_memory_utilization,
            "seed": ENGINE_SEED,
            "distributed_executor_backend": EXECUTOR_BACKEND,
            "disable_log_stats": True,
            **llm_options,
        }
        with (
            _scoped_environment(self._environment(config), tempdir=self.workdir / "tmp"),
            _quiet_chat_warmup(),
        ):
            self.llm = vllm.LLM(**options)
        self._sampling_params = vllm.SamplingParams
        logger.info(
            "vllm engine ready: %s as %s, max_model_len=%s", config.model, dtype, max_model_len
        )

    def _model_folder(self, config: GeneratorConfig) -> tuple[Path, Any]:
        """The model folder and its tokenizer (a ``tiny:`` model is saved first)."""
        if config.model.startswith(TINY_PREFIX):
            from izero.hf.tiny import build_tiny_tokenizer, parse_tiny_id, save_tiny_model

            arch, options = parse_tiny_id(config.model)
            seed = options.pop("seed", 0)
            folder = save_tiny_model(arch, self.workdir / "model", seed=seed, **options)
            return folder, prepare_tokenizer(build_tiny_tokenizer())
        from transformers import AutoTokenizer

        folder = resolve_model_dir(config.model, allow_download=config.allow_download)
        return folder, prepare_tokenizer(AutoTokenizer.from_pretrained(folder))

    def _environment(self, config: GeneratorConfig) -> dict[str, str]:
        """Variables vLLM reads while it starts (what the environment sets wins)."""
        env = {"VLLM_CACHE_ROOT": str(self.workdir / "cache")}
        if not config.allow_download:
            env["HF_HUB_OFFLINE"] = "1"
        if not torch.cuda.is_available():
            env["VLLM_CPU_KVCACHE_SPACE"] = str(DEFAULT_CPU_KV_CACHE_GIB)
        return {k: v for k, v in env.items() if k not in os.environ}

    # ------------------------------------------------------------------ requests
    def embed_tokens(self, ids: Sequence[int]) -> torch.Tensor:
        return self._table[torch.tensor(list(ids), dtype=torch.long)]

    def generate_tokens(self, requests: Sequence[GenerationRequest]) -> list[list[int]]:
        reqs = list(requests)
        if not reqs:
            return []
        if self.llm is None:
            raise GeneratorError("the vllm engine is closed; build a new one")
        rows = self.generation_rows(reqs)
        self.check_length(max(r.shape[0] for r in rows), self.config.max_new_tokens)
        params = [self._params(r) for r in reqs]
        prompts = [{"prompt_embeds": row} for row in rows]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        tokens = [strip_after_eos(list(o.outputs[0].token_ids), self.eos_ids) for o in outputs]
        self.tokens_generated += sum(len(t) for t in tokens)
        return tokens

    def _params(self, request: GenerationRequest) -> Any:
        sampled = request.temperature > 0
        return self._sampling_params(
            temperature=request.temperature,
            seed=request_sample_seed(request) if sampled else None,
            max_tokens=self.config.max_new_tokens,
            ignore_eos=True,  # izero's eos ids decide (below), not the checkpoint's
            stop_token_ids=list(self.eos_ids),
            detokenize=False,
        )

    def features(self, requests: Sequence[FeatureRequest]) -> torch.Tensor:
        raise GeneratorError(
            "the vllm generator engine cannot compute features (hidden states): vLLM returns "
            "them only from a pooling model, a second copy of the weights. Fix: set "
            "generator.engine: hf for methods that need features (instinct)"
        )

    def close(self) -> None:
        """Stop vLLM's engine core and remove the engine's private folder."""
        llm, self.llm = self.llm, None
        if llm is not None:
            core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
            if core is not None:
                try:
                    core.shutdown()
                except Exception as exc:  # shutting down: report, keep cleaning up
                    logger.warning("vllm engine core did not shut down cleanly: %s", exc)
            del llm
        shutil.rmtree(self.workdir, ignore_errors=True)


@contextlib.contextmanager
def _scoped_environment(env: Mapping[str, str], *, tempdir: Path) -> Iterator[None]:
    """Set ``env`` and the temp dir (``TMPDIR`` and :mod:`tempfile`'s cached one) while vLLM
    starts its engine core, which inherits them, then restore this process's values."""
    tempdir.mkdir(parents=True, exist_ok=True)
    values = {**env, "TMPDIR": str(tempdir)}
    saved = {k: os.environ.get(k) for k in values}
    saved_tempdir = tempfile.tempdir
    os.environ.update(values)
    tempfile.tempdir = str(tempdir)
    try:
        yield
    finally:
        tempfile.tempdir = saved_tempdir
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class _DropChatWarmupFailure(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(CHAT_WARMUP_MESSAGE)


@contextlib.contextmanager
def _quiet_chat_warmup() -> Iterator[None]:
    """vLLM warms up chat templating at start and logs a traceback when it has no tokenizer;
    izero tokenizes itself (``skip_tokenizer_init``), so that warning is noise."""
    log = logging.getLogger(CHAT_WARMUP_LOGGER)
    drop = _DropChatWarmupFailure()
    log.addFilter(drop)
    try:
        yield
    finally:
        log.removeFilter(drop)


def _max_positions(config: Any) -> int | None:
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int):
            return value
    return None


def _generation_eos(folder: Path, model_config: Any) -> int | list[int] | None:
    """The eos id(s) transformers would use: generation_config.json, else the model config."""
    from transformers import GenerationConfig

    try:
        gen = GenerationConfig.from_pretrained(folder)
    except OSError:
        gen = GenerationConfig.from_model_config(model_config)
    return gen.eos_token_id
