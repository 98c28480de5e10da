"""End-to-end sweep throughput against the bound set by the black-box rate limit.

A sweep of 24 instruction-induction tasks at the paper's budget (25 Sobol points + 5 rounds of
q=25, 20 dev and up to 100 test examples; one seed, ``instructzero``) runs with the tiny
random generator against the simulated OpenAI-compatible server, which enforces a rate
limit (``--rpm``, over 1-second windows) and answers after ``--latency-s``.

- izero: the real driver (``izero.driver.run_sweep``), every stage on local Ray.
  bound = successful requests / limit; ``wall_over_bound`` = wall time / bound.
- original order: InstructZero's loop order on the same stages and server: one task after
  another, one instruction at a time (generate it, score its dev examples with 20 concurrent
  calls), proposals per task. It is run on ``--original-tasks`` tasks and extrapolated
  linearly to all tasks (stated in the table); identical instructions are scored once, as
  the original does.

    python benchmarks/sweep_e2e.py                      # ~6-8 minutes on 2 cores
    python benchmarks/sweep_e2e.py --rpm 6000 --tasks 6 --preset demo   # a quick look

The last line printed is one JSON object with ``wall_over_bound`` and
``speedup_vs_original_order``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "instruction_induction"
ORIGINAL_CONCURRENCY = 20
SIM_KEY = "sk-bench-simulated"


def study_tasks(data_dir: Path, n: int) -> list[str]:
    """The annotated instruction-induction tasks (24), else the built-in ones."""
    from izero.tasks import list_tasks
    from izero.tasks.builtin import BUILTIN_TASKS

    if (data_dir / "annotations").is_dir():
        names = sorted(p.stem for p in (data_dir / "annotations").glob("*.json"))
        return names[:n]
    names = [t for t in list_tasks() if t in BUILTIN_TASKS]
    return names[:n]


def start_limited_server(args, tasks: list[str], key: str):
    """The simulated server (its own process) knowing ``tasks``, enforcing ``args.rpm`` over
    1-second windows with ``args.latency_s`` per answer, requiring ``key``; started."""
    from izero.blackbox import SimulatedOptions, SimulatedServer
    from izero.tasks import load_task

    data_dir = args.data_dir if (args.data_dir / "induce").is_dir() else None
    server = SimulatedServer(
        tasks=[load_task(t, data_dir=data_dir) for t in tasks],
        options=SimulatedOptions(
            api_key=key, latency_s=args.latency_s, rpm=args.rpm, window_s=1.0, seed=0
        ),
        in_subprocess=True,
    )
    server.start()
    return server


def _config(args, tasks, base_url, out):
    from izero.config import config_from_dict

    return config_from_dict(
        {
            "name": "bench-e2e",
            "tasks": tasks,
            "data_dir": str(args.data_dir) if (args.data_dir / "induce").is_dir() else None,
            "seeds": [0],
            "methods": ["instructzero"],
            "budget": {"preset": args.preset},
            "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 16},
            "blackbox": {
                "backend": "openai",
                "base_url": base_url,
                "model": "izero-sim",
                "api_key_env": "IZERO_BENCH_KEY",
                "rpm": args.rpm,
                "concurrency": args.concurrency,
            },
            "output": {"path": str(out)},
        }
    )


def _ok(stats: dict) -> int:
    return len(stats["ok_times"])


def run_izero(args, tasks, server, out) -> dict:
    from izero.driver import run_sweep

    cfg = _config(args, tasks, server.base_url, out)
    before = server.stats()
    t0 = time.perf_counter()
    outcome = run_sweep(cfg, on_progress=lambda p: print("  izero:", p.line(), file=sys.stderr))
    wall = time.perf_counter() - t0
    after = server.stats()
    n_ok = _ok(after) - _ok(before)
    n_all = after["n_requests"] - before["n_requests"]
    bound = n_ok / (args.rpm / 60.0)
    evals = sum(1 for _ in outcome.outcomes)
    return {
        "wall_s": wall,
        "requests_ok": n_ok,
        "requests_429": sum(1 for s in after["statuses"][before["n_requests"] :] if s == 429),
        "requests_all": n_all,
        "bound_s": bound,
        "runs": evals,
    }


async def _original_task(task_name, args, gen_pool, scorer, splits, proposer_cls, options):
    """InstructZero's order for one task: one instruction at a time."""
    from izero.bo import TaskObservations, initial_design
    from izero.generator import GenerationRequest

    cfg_budget = {"paper": (25, 5, 25), "demo": (8, 3, 8), "smoke": (4, 2, 4)}[args.preset]
    n_init, n_rounds, q = cfg_budget
    demos = tuple((e.input, e.output) for e in splits.demos)
    seen: dict[str, tuple] = {}
    zs, ys, ss = [], [], []
    proposer = proposer_cls(options)
    for rnd in range(n_rounds + 1):
        if rnd == 0:
            batch = initial_design(n_init, 10, seed=0)
        else:
            obs = TaskObservations(
                z=torch.tensor(zs, dtype=torch.float64),
                y=torch.tensor(ys, dtype=torch.float64),
                s=torch.tensor(ss, dtype=torch.float64),
            )
            batch = proposer.propose([obs], q=q, seeds=[rnd], keys=[task_name])[0]
        for z in batch.tolist():
            (instr,) = await gen_pool.generate([GenerationRequest(demos=demos, z=tuple(z))])
            if instr not in seen:
                res = await scorer.score(instr, splits.dev, splits.metric)
                seen[instr] = (res.mean, res.scores)
            mean, scores = seen[instr]
            if mean is not None:
                zs.append(z)
                ys.append(mean)
                ss.append([mean if v is None else v for v in scores])
    best = max(seen, key=lambda i: -1 if seen[i][0] is None else seen[i][0])
    await scorer.score(best, splits.test, splits.metric)


def run_original(args, tasks, server) -> dict:
    from izero.blackbox import EndpointConfig, EndpointScorer
    from izero.bo import BatchProposer, ProposerOptions
    from izero.generator import GeneratorPool
    from izero.tasks import load_task, make_splits

    data_dir = args.data_dir if (args.data_dir / "induce").is_dir() else None
    b = {"paper": (20, 100), "demo": (10, 20), "smoke": (5, 10)}[args.preset]
    gen_pool = GeneratorPool(model="tiny:llama", device="cpu", max_new_tokens=16)
    gen_pool.wait_ready()
    endpoint = EndpointConfig(
        base_url=server.base_url,
        model="izero-sim",
        api_key=SIM_KEY,
        rpm=args.rpm,
        concurrency=ORIGINAL_CONCURRENCY,
    )

    async def main() -> float:
        scorer = EndpointScorer(endpoint)  # no cache: nothing shared with the izero run
        t0 = time.perf_counter()
        try:
            for name in tasks[: args.original_tasks]:
                task = load_task(name, data_dir=data_dir)
                splits = make_splits(task, seed=0, n_dev=b[0], n_test=b[1])
                await _original_task(
                    name, args, gen_pool, scorer, splits, BatchProposer, ProposerOptions()
                )
                print(f"  original order: {name} done", file=sys.stderr)
        finally:
            await scorer.close()
        return time.perf_counter() - t0

    try:
        measured = asyncio.run(main())
    finally:
        gen_pool.shutdown()
    k = min(args.original_tasks, len(tasks))
    return {
        "measured_s": measured,
        "tasks_measured": k,
        "extrapolated_s": measured * len(tasks) / k,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument("--preset", choices=["paper", "demo", "smoke"], default="paper")
    parser.add_argument("--rpm", type=float, default=24000, help="enforced limit (req/min)")
    parser.add_argument("--latency-s", type=float, default=0.6, help="server answer latency")
    parser.add_argument("--concurrency", type=int, default=512, help="izero in-flight calls")
    parser.add_argument("--original-tasks", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(1)
    os.environ["IZERO_BENCH_KEY"] = SIM_KEY

    import ray

    tasks = study_tasks(args.data_dir, args.tasks)
    server = start_limited_server(args, tasks, SIM_KEY)
    ray.init(
        num_cpus=4,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"OMP_NUM_THREADS": "1"}},
    )
    try:
        with tempfile.TemporaryDirectory(prefix="izero-bench-") as tmp:
            izero = run_izero(args, tasks, server, Path(tmp) / "sweep")
        original = run_original(args, tasks, server)
    finally:
        ray.shutdown()
        server.stop()

    wall_over_bound = izero["wall_s"] / izero["bound_s"]
    used = izero["requests_ok"] / izero["wall_s"] / (args.rpm / 60.0)
    speedup = original["extrapolated_s"] / izero["wall_s"]
    print(
        f"\nsweep: {len(tasks)} tasks, preset {args.preset}, limit {args.rpm:.0f} RPM "
        f"(1 s windows), latency {args.latency_s} s"
    )
    print("| order | wall (s) | successful requests | 429s | bound (s) | wall / bound |")
    print("|---|---|---|---|---|---|")
    print(
        f"| izero (all tasks concurrent) | {izero['wall_s']:.1f} | {izero['requests_ok']} | "
        f"{izero['requests_429']} | {izero['bound_s']:.1f} | {wall_over_bound:.3f} |"
    )
    print(
        f"| original order ({original['tasks_measured']} task(s) measured, x"
        f"{len(tasks) / original['tasks_measured']:.0f} extrapolated) | "
        f"{original['extrapolated_s']:.1f} | - | - | - | - |"
    )
    print(f"share of the time the limit was used (izero): {used:.3f}")
    print(f"speed-up over the original order: {speedup:.1f}x")
    print(
        json.dumps(
            {
                "wall_over_bound": round(wall_over_bound, 4),
                "speedup_vs_original_order": round(speedup, 2),
                "share_of_limit_used": round(used, 4),
                "izero_wall_s": round(izero["wall_s"], 1),
                "bound_s": round(izero["bound_s"], 1),
                "original_extrapolated_s": round(original["extrapolated_s"], 1),
                "requests_429": izero["requests_429"],
                "tasks": len(tasks),
                "rpm": args.rpm,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
