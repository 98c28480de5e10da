"""Instruction-generation throughput: batched soft-prompt decoding vs the original batch-1 loop.

Default (CPU, tiny random Llama, about a minute): instructions/s for batch sizes 1, 8, 32, 64,
128, 256 and the batch-1 loop of the original InstructZero code (one ``generate`` call per
instruction), measured side by side in interleaved repeats; reports the best batched setting over
the batch-1 loop. Every row decodes the full ``--new-tokens`` (``eos_token_id=None``).

``--model-shape llama-7b`` (or ``llama-13b`` / ``vicuna-13b`` / ``tiny``) builds a random-weight
model of that real size directly on the target device (constructed on ``meta``, then
materialised there: no CPU copy, bf16 on GPU), and reports instructions/s and decode tokens/s at
batch 1..256, plus the share of the memory-bandwidth bound reached: a decode step must read every
weight once, so it cannot be faster than ``weight_bytes / copy_bandwidth`` (bandwidth measured on
the same device by a large device-to-device copy, counting bytes read + written). For CPU smoke
runs, ``--num-layers`` / ``--hidden-size`` shrink the shape. ``--cache-implementation static``
uses a static KV cache, which transformers compiles with ``torch.compile`` on CUDA (each batch
shape compiles on its first call; the figures are the best of ``--repeats``, so keep it >= 2).

``--engine vllm`` runs both engines side by side on ``--model`` (default ``tiny:llama``, float32,
CPU in the vLLM CPU build): the same ``--engine-requests`` greedy requests through the HF engine
(in batches of ``--engine-batch-size``) and the vLLM engine (all at once; vLLM schedules them),
interleaved repeats; instructions/s of each, and the share of identical instructions
(``vllm_matches_hf``) and of identical token sequences. On a tiny model vLLM's per-step overhead
dominates; its case is large models on GPUs.

Prints a table, then as the LAST line one JSON object with ``batched_over_batch1`` and
``best_instructions_per_s`` (and more); with ``--engine vllm``: ``hf_instructions_per_s``,
``vllm_instructions_per_s``, ``vllm_over_hf`` and ``vllm_matches_hf``.

    PYTHONPATH=$PWD python benchmarks/generator_throughput.py
    PYTHONPATH=$PWD python benchmarks/generator_throughput.py --engine vllm   # needs izero[vllm]
    PYTHONPATH=$PWD python benchmarks/generator_throughput.py --model-shape llama-7b  # on a GPU
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from izero.generator import GenerationRequest, InstructionGenerator
from izero.hf import build_tiny_tokenizer, load_causal_lm, prepare_tokenizer
from izero.hf.loading import resolve_device, resolve_dtype

DEFAULT_BATCH_SIZES = (1, 8, 32, 64, 128, 256)
SHAPE_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
N_TASKS = 8
N_DEMOS = 5
INTRINSIC_DIM = 10


@dataclass(frozen=True)
class Shape:
    """Sizes of a Llama-architecture model."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    vocab_size: int = 32000
    max_positions: int = 4096


SHAPES: dict[str, Shape] = {
    "tiny": Shape(hidden_size=128, intermediate_size=512, num_layers=2, num_heads=4),
    "llama-7b": Shape(hidden_size=4096, intermediate_size=11008, num_layers=32, num_heads=32),
    "llama-13b": Shape(hidden_size=5120, intermediate_size=13824, num_layers=40, num_heads=40),
}
SHAPES["vicuna-13b"] = SHAPES["llama-13b"]  # Vicuna-13B is a fine-tuned Llama-13B
SHAPES["llama-2-7b"] = SHAPES["llama-7b"]


# ---------------------------------------------------------------------------- workload
def make_tasks(seed: int = 0) -> list[tuple[tuple[str, str], ...]]:
    """``N_TASKS`` small programmatic tasks with ``N_DEMOS`` demonstrations each."""
    rng = random.Random(seed)
    words = ["apple", "river", "house", "green", "quick", "table", "music", "light", "stone"]

    def demos(fn: Callable[[], tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple(fn() for _ in range(N_DEMOS))

    def pair() -> tuple[int, int]:
        return rng.randint(10, 99), rng.randint(10, 99)

    def sum_task() -> tuple[str, str]:
        a, b = pair()
        return f"{a} {b}", str(a + b)

    def diff_task() -> tuple[str, str]:
        a, b = pair()
        return f"{a} {b}", str(a - b)

    def first_letter() -> tuple[str, str]:
        w = rng.choice(words)
        return w, w[0]

    def plural() -> tuple[str, str]:
        w = rng.choice(words)
        return w, w + "s"

    def sort_words() -> tuple[str, str]:
        ws = rng.sample(words, 4)
        return " ".join(ws), " ".join(sorted(ws))

    def reverse() -> tuple[str, str]:
        w = rng.choice(words)
        return w, w[::-1]

    def upper() -> tuple[str, str]:
        w = rng.choice(words)
        return w, w.upper()

    def count_words() -> tuple[str, str]:
        ws = rng.sample(words, rng.randint(2, 6))
        return " ".join(ws), str(len(ws))

    fns = (sum_task, diff_task, first_letter, plural, sort_words, reverse, upper, count_words)
    return [demos(fn) for fn in fns[:N_TASKS]]


def make_requests(n: int, seed: int = 0) -> list[GenerationRequest]:
    """``n`` requests cycling over the tasks, each with its own Sobol-like random ``z``."""
    tasks = make_tasks(seed)
    gen = torch.Generator().manual_seed(seed)
    z = torch.rand(n, INTRINSIC_DIM, generator=gen) * 2 - 1
    return [
        GenerationRequest(demos=tasks[k % len(tasks)], z=tuple(z[k].tolist())) for k in range(n)
    ]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_time(fn: Callable[[], Any], device: torch.device, *, repeats: int) -> float:
    """Fastest of ``repeats`` timed calls (seconds)."""
    return min(_timed(fn, device) for _ in range(repeats))


def _timed(fn: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------- tiny CPU mode
def run_default(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    model, tokenizer = load_causal_lm(args.model, dtype=args.dtype, device=device)
    pair = (model, tokenizer)

    def generator(batch_size: int) -> InstructionGenerator:
        return InstructionGenerator(
            model_and_tokenizer=pair,
            max_new_tokens=args.new_tokens,
            eos_token_id=None,
            batch_size=batch_size,
            cache_implementation=args.cache_implementation,
        )

    batch_sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else None
    batch_sizes = batch_sizes or list(DEFAULT_BATCH_SIZES)
    n_loop = args.loop_requests
    requests = make_requests(max([*batch_sizes, n_loop]), seed=args.seed)
    gens = {b: generator(b) for b in batch_sizes}
    loop_gen = generator(1)

    def batch1_loop() -> None:  # the original method: one instruction per generate call
        for r in requests[:n_loop]:
            loop_gen.generate([r])

    loop_gen.generate(requests[:1])  # warm-up
    for b in batch_sizes:
        gens[b].generate(requests[: min(b, 8)])
    rates: dict[str, list[float]] = {"loop": []}
    rates.update({str(b): [] for b in batch_sizes})
    for _ in range(args.repeats):  # interleaved, so machine noise hits every setting alike
        rates["loop"].append(n_loop / _timed(batch1_loop, device))
        for b in batch_sizes:
            n = max(b, n_loop)
            rates[str(b)].append(
                n / _timed(lambda b=b, n=n: gens[b].generate(requests[:n]), device)
            )
    median = {k: statistics.median(v) for k, v in rates.items()}
    loop_rate = median.pop("loop")
    best_b = max(median, key=median.__getitem__)

    print(f"model={args.model} device={device} dtype={model.dtype} new_tokens={args.new_tokens}")
    print(f"threads={torch.get_num_threads()} repeats={args.repeats} (median shown)")
    print(f"{'setting':>22} {'instr/s':>10} {'tokens/s':>10} {'vs loop':>8}")
    print(f"{'batch-1 loop (orig.)':>22} {loop_rate:10.1f} {loop_rate * args.new_tokens:10.0f}")
    for b in batch_sizes:
        r = median[str(b)]
        print(
            f"{'batch ' + str(b):>22} {r:10.1f} {r * args.new_tokens:10.0f} {r / loop_rate:7.1f}x"
        )
    return {
        "benchmark": "generator_throughput",
        "mode": "tiny",
        "model": args.model,
        "cache_implementation": args.cache_implementation,
        "device": str(device),
        "dtype": str(model.dtype).removeprefix("torch."),
        "threads": torch.get_num_threads(),
        "new_tokens": args.new_tokens,
        "batch1_loop_instructions_per_s": round(loop_rate, 2),
        "instructions_per_s": {b: round(r, 2) for b, r in median.items()},
        "best_batch_size": int(best_b),
        "best_instructions_per_s": round(median[best_b], 2),
        "batched_over_batch1": round(median[best_b] / loop_rate, 2),
        "host": platform.node(),
    }


# ---------------------------------------------------------------------------- engines side by side
def run_engines(args: argparse.Namespace) -> dict[str, Any]:
    """The HF and vLLM engines on the same model and requests, in one process, interleaved."""
    from izero.generator import GeneratorConfig, build_engine

    n = args.engine_requests
    requests = make_requests(n, seed=args.seed)
    common = {
        "model": args.model,
        "dtype": "float32" if args.dtype == "auto" else args.dtype,
        "device": args.device,
        "max_new_tokens": args.new_tokens,
        "eos_token_id": None,  # random weights: every row decodes the full length
        "batch_size": args.engine_batch_size,
    }
    hf = build_engine(GeneratorConfig(engine="hf", **common))
    t0 = time.perf_counter()
    vllm = build_engine(
        GeneratorConfig(engine="vllm", vllm_max_model_len=args.vllm_max_model_len, **common)
    )
    vllm_start_s = time.perf_counter() - t0
    try:
        engines = {"hf": hf, "vllm": vllm}
        tokens = {name: e.generate_tokens(requests) for name, e in engines.items()}  # warm-up
        rates: dict[str, list[float]] = {name: [] for name in engines}
        for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
            for name, engine in engines.items():
                rates[name].append(
                    n / _timed(lambda e=engine: e.generate_tokens(requests), hf.device)
                )
        texts = {name: engines[name].clean(t) for name, t in tokens.items()}
    finally:
        vllm.close()
    same_tokens = sum(a == b for a, b in zip(tokens["hf"], tokens["vllm"], strict=True)) / n
    same_texts = sum(a == b for a, b in zip(texts["hf"], texts["vllm"], strict=True)) / n
    median = {name: statistics.median(r) for name, r in rates.items()}

    print(
        f"model={args.model} dtype={common['dtype']} requests={n} new_tokens={args.new_tokens} "
        f"hf batch_size={args.engine_batch_size} (vLLM schedules all {n} itself)"
    )
    print(f"threads={torch.get_num_threads()} repeats={args.repeats} (median shown)")
    print(f"{'engine':>8} {'instr/s':>10} {'tokens/s':>10} {'vs hf':>7}")
    for name, rate in median.items():
        ratio = rate / median["hf"]
        print(f"{name:>8} {rate:10.1f} {rate * args.new_tokens:10.0f} {ratio:6.2f}x")
    print(f"vLLM engine start: {vllm_start_s:.1f} s")
    print(f"identical instructions: {same_texts:.3f}; identical token sequences: {same_tokens:.3f}")
    return {
        "benchmark": "generator_throughput",
        "mode": "engines",
        "model": args.model,
        "dtype": common["dtype"],
        "requests": n,
        "new_tokens": args.new_tokens,
        "hf_batch_size": args.engine_batch_size,
        "hf_instructions_per_s": round(median["hf"], 2),
        "vllm_instructions_per_s": round(median["vllm"], 2),
        "vllm_over_hf": round(median["vllm"] / median["hf"], 3),
        "vllm_start_s": round(vllm_start_s, 1),
        "vllm_token_matches_hf": round(same_tokens, 4),
        "vllm_matches_hf": round(same_texts, 4),
        "host": platform.node(),
    }


# ---------------------------------------------------------------------------- real shapes
def shape_from_args(args: argparse.Namespace) -> Shape:
    if args.model_shape not in SHAPES:
        raise SystemExit(f"unknown --model-shape {args.model_shape!r}; choose from {list(SHAPES)}")
    shape = SHAPES[args.model_shape]
    hidden = args.hidden_size or shape.hidden_size
    ratio = shape.intermediate_size / shape.hidden_size
    head_dim = shape.hidden_size // shape.num_heads
    return Shape(
        hidden_size=hidden,
        intermediate_size=round(hidden * ratio / 16) * 16,
        num_layers=args.num_layers or shape.num_layers,
        num_heads=max(1, hidden // head_dim),
        vocab_size=shape.vocab_size,
        max_positions=shape.max_positions,
    )


def build_random_llama(
    shape: Shape, *, device: torch.device, dtype: torch.dtype, seed: int = 0
) -> Any:
    """A random Llama of ``shape``, built on ``meta`` then materialised on ``device``."""
    from transformers import AutoModelForCausalLM, LlamaConfig

    config = LlamaConfig(
        vocab_size=shape.vocab_size,
        hidden_size=shape.hidden_size,
        intermediate_size=shape.intermediate_size,
        num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads,
        num_key_value_heads=shape.num_heads,
        max_position_embeddings=shape.max_positions,
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    model = model.to_empty(device=device)
    for module in model.modules():  # meta construction skipped init: run it on the device
        module._is_hf_initialized = False
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        model.initialize_weights()
    return model.eval()


def measure_copy_bandwidth(device: torch.device, *, nbytes: int, repeats: int = 10) -> float:
    """Device memory bandwidth in bytes/s from ``dst.copy_(src)`` (read + write counted)."""
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    src.fill_(1)
    dst = torch.empty_like(src)
    best = _best_time(lambda: dst.copy_(src), device, repeats=repeats + 1)
    return 2 * nbytes / best


def decode_weight_bytes(model: Any) -> int:
    """Bytes of weights one decode step reads: all parameters but the input-embedding table
    (only a few of its rows are read per step; the separate lm_head is counted)."""
    embed = model.get_input_embeddings().weight
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    return total - embed.numel() * embed.element_size()


def run_shape(args: argparse.Namespace) -> dict[str, Any]:
    device = resolve_device(args.device)
    dtype = resolve_dtype(args.dtype, device=device)
    shape = shape_from_args(args)
    t0 = time.perf_counter()
    model = build_random_llama(shape, device=device, dtype=dtype, seed=args.seed)
    build_s = time.perf_counter() - t0
    tokenizer = prepare_tokenizer(build_tiny_tokenizer())
    weight_bytes = decode_weight_bytes(model)
    copy_bytes = args.copy_mib * 2**20
    bandwidth = measure_copy_bandwidth(device, nbytes=copy_bytes)
    bound_step = weight_bytes / bandwidth
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")] if args.batch_sizes else None
    batch_sizes = batch_sizes or list(SHAPE_BATCH_SIZES)
    requests = make_requests(max(batch_sizes), seed=args.seed)
    n_new = args.new_tokens

    def gen(batch_size: int, new_tokens: int) -> InstructionGenerator:
        return InstructionGenerator(
            model_and_tokenizer=(model, tokenizer),
            max_new_tokens=new_tokens,
            eos_token_id=None,
            batch_size=batch_size,
            cache_implementation=args.cache_implementation,
        )

    gen(1, 2).generate_tokens(requests[:1])  # warm-up
    rows = []
    print(
        f"shape={args.model_shape} {shape} device={device} dtype={dtype} "
        f"cache={args.cache_implementation} "
        f"params={sum(p.numel() for p in model.parameters()) / 1e9:.2f}B build={build_s:.1f}s"
    )
    print(
        f"decode weight bytes={weight_bytes / 1e9:.2f} GB, copy bandwidth="
        f"{bandwidth / 1e9:.0f} GB/s -> bound {bound_step * 1e3:.2f} ms per decode step"
    )
    print(
        f"{'batch':>6} {'instr/s':>9} {'decode tok/s':>13} {'step ms':>8} "
        f"{'prefill s':>9} {'bw share':>8}"
    )
    for b in batch_sizes:
        reqs = requests[:b]
        full_gen, prefill_gen = gen(b, n_new), gen(b, 1)
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        try:
            t_pre = _best_time(partial(prefill_gen.generate_tokens, reqs), device, repeats=2)
            t_full = _best_time(
                partial(full_gen.generate_tokens, reqs), device, repeats=args.repeats
            )
        except torch.OutOfMemoryError:
            print(f"{b:>6} out of memory")
            break
        step = max(t_full - t_pre, 1e-9) / (n_new - 1)
        row = {
            "batch_size": b,
            "instructions_per_s": round(b / t_full, 3),
            "decode_tokens_per_s": round(b / step, 1),
            "step_ms": round(step * 1e3, 3),
            "prefill_s": round(t_pre, 4),
            "bandwidth_share": round(bound_step / step, 4),
        }
        if device.type == "cuda":
            row["peak_mem_gb"] = round(torch.cuda.max_memory_allocated(device) / 1e9, 2)
        rows.append(row)
        print(
            f"{b:>6} {row['instructions_per_s']:9.2f} {row['decode_tokens_per_s']:13.0f} "
            f"{row['step_ms']:8.2f} {row['prefill_s']:9.3f} {row['bandwidth_share']:8.1%}"
        )
    best = max(rows, key=lambda r: r["instructions_per_s"])
    return {
        "benchmark": "generator_throughput",
        "mode": "model_shape",
        "model_shape": args.model_shape,
        "cache_implementation": args.cache_implementation,
        "shape": shape.__dict__,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "new_tokens": n_new,
        "decode_weight_bytes": weight_bytes,
        "copy_bandwidth_gb_s": round(bandwidth / 1e9, 1),
        "bound_step_ms": round(bound_step * 1e3, 4),
        "rows": rows,
        "best_batch_size": best["batch_size"],
        "best_instructions_per_s": best["instructions_per_s"],
        "best_decode_tokens_per_s": max(r["decode_tokens_per_s"] for r in rows),
        "best_bandwidth_share": max(r["bandwidth_share"] for r in rows),
        "batched_over_batch1": round(best["instructions_per_s"] / rows[0]["instructions_per_s"], 2),
    }


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", default="tiny:llama", help="default mode: model id (tiny:...)")
    p.add_argument("--model-shape", default=None, help=f"one of {sorted(SHAPES)}")
    p.add_argument("--num-layers", type=int, default=None, help="shrink --model-shape (smoke)")
    p.add_argument("--hidden-size", type=int, default=None, help="shrink --model-shape (smoke)")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--batch-sizes", default=None, help="comma-separated, e.g. 1,8,64")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--loop-requests", type=int, default=32, help="requests in the batch-1 loop")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = default)")
    p.add_argument("--copy-mib", type=int, default=None, help="bandwidth probe size (MiB)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cache-implementation",
        choices=("dynamic", "static"),
        default="dynamic",
        help="HF engine KV cache; static is compiled by transformers on CUDA",
    )
    p.add_argument(
        "--engine",
        choices=("hf", "vllm"),
        default="hf",
        help="vllm: the HF and vLLM engines side by side on --model (float32 on CPU)",
    )
    p.add_argument("--engine-requests", type=int, default=256, help="--engine vllm: requests")
    p.add_argument("--engine-batch-size", type=int, default=64, help="--engine vllm: HF batch")
    p.add_argument("--vllm-max-model-len", type=int, default=512)
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if args.model_shape:
        if args.new_tokens < 2:
            raise SystemExit("--model-shape needs --new-tokens >= 2 (decode time = full - prefill)")
        if args.copy_mib is None:
            args.copy_mib = 4096 if resolve_device(args.device).type == "cuda" else 256
        if args.engine != "hf":
            raise SystemExit("--model-shape measures the HF engine; drop --engine")
        result = run_shape(args)
    elif args.engine == "vllm":
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")  # keep the table readable
        result = run_engines(args)
    else:
        result = run_default(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
