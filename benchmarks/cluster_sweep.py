"""A sweep at the scale of a real study on a 3-node local Ray cluster, one node lost midway.

A head node (the job's driver, scoring workers, the shared limiter, the response cache) and two
GPU worker nodes (fake ``GPU`` resources: one generator actor each, its tiny model on the CPU)
run as separate raylets on this machine (``ray.cluster_utils.Cluster``). Sweeps of
``instructzero`` over the 24 annotated instruction-induction tasks x 1, 2 and 4 seeds (24, 48
and 96 runs) are submitted as Ray jobs (``jobs/sweep.py``, as ``ray job submit`` runs it) against
the simulated OpenAI-compatible server (its own process), which enforces ``--rpm`` per second.
During the largest sweep one GPU worker node is killed once ``--remove-at`` of its requests are
answered; a replacement node joins ``--replace-after-s`` later, as an autoscaler's would.

Reported per sweep: the bound set by the rate limit (answered requests / limit), the job's wall
time (submission to end, actor start-up included) against it, the driver process's peak RSS
(sampled every 0.2 s), results lost (evaluations or summaries missing) and calls paid twice
(requests the server answered more than once). The last line is one JSON object with the
largest sweep's ``wall_over_bound``, ``lost``, ``repaid_calls``, ``node_removed`` and
``driver_peak_rss_mb``.

Budget: the paper's (25 Sobol points + 5 rounds of 25, 20 dev and 100 test examples) makes
~3,100 calls and 125 GP proposals per run; 96 runs are ~300,000 calls and ~12,000 proposal
problems, which 2 cores cannot solve in 20 minutes (a proposal takes seconds of CPU). The default
is the ``demo`` budget (8 + 3 rounds of 8, 10 dev, 20 test: ~340 calls, 24 proposals per run) at
3,000 RPM, where the 96-run sweep's bound is about 10 minutes and the optimiser keeps up.

    python benchmarks/cluster_sweep.py                          # ~20 minutes on 2 cores
    python benchmarks/cluster_sweep.py --seeds 1 --tasks 4 --preset smoke --rpm 6000  # a look
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data" / "instruction_induction"
KEY = "sk-bench-cluster-simulated"
KEY_ENV = "IZERO_BENCH_KEY"
GPU_NODES = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(root: Path):
    """Head (CPU, dashboard for jobs and state) and ``GPU_NODES`` one-GPU worker nodes."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        connect=False,
        head_node_args={
            "num_cpus": 2,
            "include_dashboard": True,
            "dashboard_host": "127.0.0.1",
            "dashboard_port": _free_port(),
            "dashboard_agent_listen_port": _free_port(),
        },
    )
    for _ in range(GPU_NODES):
        cluster.add_node(num_cpus=1, num_gpus=1)
    return cluster


def _config(args, tasks: list[str], seeds: int, base_url: str, out: Path) -> Path:
    raw = {
        "name": f"cluster-{seeds}",
        "tasks": tasks,
        "data_dir": str(args.data_dir) if (args.data_dir / "induce").is_dir() else None,
        "seeds": list(range(seeds)),
        "methods": ["instructzero"],
        "budget": {"preset": args.preset},
        "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 16},
        "blackbox": {
            "backend": "openai",
            "base_url": base_url,
            "model": "izero-sim",
            "api_key_env": KEY_ENV,
            "rpm": args.rpm,
            "concurrency": args.concurrency,
        },
        "output": {"path": str(out)},
    }
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


class RssSampler(threading.Thread):
    """Peak resident memory of one process (the job's driver), sampled every ``every_s``."""

    def __init__(self, pid: int, every_s: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every_s = pid, every_s
        self.peak = 0
        self._done = threading.Event()

    def run(self) -> None:
        import psutil

        try:
            proc = psutil.Process(self.pid)
            while not self._done.is_set():
                self.peak = max(self.peak, proc.memory_info().rss)
                time.sleep(self.every_s)
        except psutil.Error:
            pass  # the driver ended

    def stop(self) -> None:
        self._done.set()
        self.join(5)


def run_sweep(args, cluster, server, tasks, seeds: int, out: Path, remove_node: bool) -> dict:
    from ray.job_submission import JobSubmissionClient

    config = _config(args, tasks, seeds, server.base_url, out)
    before = server.stats()
    client = JobSubmissionClient(f"http://{cluster.webui_url}")
    entrypoint = f"{sys.executable} {REPO / 'jobs' / 'sweep.py'} --config {config} --no-report"
    deadline = time.time() + 120
    while True:  # the job agent comes up a little after the dashboard
        try:
            job = client.submit_job(entrypoint=entrypoint)
            break
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.time() > deadline:
                raise
            time.sleep(1)
    sampler = None
    removed = False
    replace_at = None  # when the autoscaler's new node joins (added in this, the main, thread)
    expected_calls = seeds * len(tasks) * _calls_per_run(args.preset)
    while True:
        status = client.get_job_status(job).value
        if status not in ("PENDING", "RUNNING"):
            break
        info = client.get_job_info(job)
        if sampler is None and info.driver_info is not None:
            sampler = RssSampler(int(info.driver_info.pid))
            sampler.start()
        if remove_node and not removed:
            done = len(server.stats()["ok_keys"]) - len(before["ok_keys"])
            if done >= args.remove_at * expected_calls:
                victim = next(iter(cluster.worker_nodes))
                cluster.remove_node(victim, allow_graceful=False)  # lost, not drained
                removed = True
                print(f"  removed a worker node after {done} answered requests", file=sys.stderr)
                replace_at = time.time() + args.replace_after_s
        if replace_at is not None and time.time() >= replace_at:
            cluster.add_node(num_cpus=1, num_gpus=1)  # the autoscaler's new node
            replace_at = None
            print("  a replacement worker node joined", file=sys.stderr)
        time.sleep(0.5)
    if sampler is not None:
        sampler.stop()
    if replace_at is not None:  # the sweep ended first: the next one has its nodes back
        cluster.add_node(num_cpus=1, num_gpus=1)
    info = client.get_job_info(job)
    if status != "SUCCEEDED":
        raise RuntimeError(f"sweep of {seeds} seed(s) ended {status}:\n{client.get_job_logs(job)}")
    after = server.stats()
    ok = after["ok_keys"][len(before["ok_keys"]) :]
    repaid = sum(n - 1 for n in Counter(ok).values())
    wall = (info.end_time - info.start_time) / 1000.0
    bound = len(ok) / (args.rpm / 60.0)
    lost = _lost(out, seeds * len(tasks), _evaluations_per_run(args.preset))
    return {
        "runs": seeds * len(tasks),
        "answered": len(ok),
        "requests_429": sum(1 for s in after["statuses"][before["n_requests"] :] if s == 429),
        "bound_s": bound,
        "wall_s": wall,
        "wall_over_bound": wall / bound,
        "driver_peak_rss_mb": (sampler.peak if sampler else 0) / 2**20,
        "lost": lost,
        "repaid_calls": repaid,
        "node_removed": removed,
    }


def _preset(name: str) -> dict:
    from izero.config.budget import BUDGET_PRESETS

    return dict(BUDGET_PRESETS[name])


def _evaluations_per_run(preset: str) -> int:
    b = _preset(preset)
    return b["n_init"] + b["n_rounds"] * b["q"]


def _calls_per_run(preset: str) -> int:
    b = _preset(preset)
    return _evaluations_per_run(preset) * b["n_dev"] + b["n_test"]


def _lost(out: Path, runs: int, per_run: int) -> int:
    """Evaluations and summaries the results should hold and do not."""
    from izero.results import ResultsStore

    store = ResultsStore(str(out))
    evaluations = store.read_evaluations().num_rows
    summaries = [s for s in store.read_summaries().to_pylist() if s.get("test_score") is not None]
    return max(0, runs * per_run - evaluations) + max(0, runs - len(summaries))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--tasks", type=int, default=24)
    parser.add_argument(
        "--seeds", default="1,2,4", help="sweeps of this many seeds each (the last loses a node)"
    )
    parser.add_argument("--preset", choices=["paper", "demo", "smoke"], default="demo")
    parser.add_argument("--rpm", type=float, default=3000.0, help="enforced limit (req/min)")
    parser.add_argument("--latency-s", type=float, default=0.3, help="server answer latency")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument(
        "--remove-at", type=float, default=0.4, help="share of calls answered at the node loss"
    )
    parser.add_argument("--replace-after-s", type=float, default=10.0)
    args = parser.parse_args(argv)
    seeds = [int(s) for s in args.seeds.split(",")]
    sys.path.insert(0, str(REPO))  # this checkout's izero, here and in the server's process

    from sweep_e2e import start_limited_server, study_tasks  # beside this file

    tasks = study_tasks(args.data_dir, args.tasks)
    root = Path(tempfile.mkdtemp(prefix="izb", dir="/tmp"))
    env = {
        "RAY_TMPDIR": str(root),  # keeps this cluster out of other processes' ray.init()
        "RAY_USAGE_STATS_ENABLED": "0",
        KEY_ENV: KEY,  # the nodes' environment: job drivers inherit it
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "OMP_NUM_THREADS": "1",
    }
    os.environ.update(env)
    server = start_limited_server(args, tasks, KEY)
    cluster = start_cluster(root)
    rows = []
    try:
        for i, n in enumerate(seeds):
            last = i == len(seeds) - 1
            row = run_sweep(args, cluster, server, tasks, n, root / f"sweep-{n}", last)
            rows.append(row)
            print(
                f"  {row['runs']} runs: wall {row['wall_s']:.0f}s, bound {row['bound_s']:.0f}s, "
                f"driver peak {row['driver_peak_rss_mb']:.0f} MB",
                file=sys.stderr,
            )
    finally:
        cluster.shutdown()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)

    print(
        f"\ncluster sweep: head + {GPU_NODES} GPU nodes (one generator actor each), "
        f"{len(tasks)} tasks x instructzero, preset {args.preset}, limit {args.rpm:.0f} RPM "
        f"(1 s windows), latency {args.latency_s} s; the last sweep lost a GPU node at "
        f"{args.remove_at:.0%} of its calls (replaced {args.replace_after_s:.0f} s later)"
    )
    print(
        "| runs | answered | 429s | bound (s) | wall (s) | wall / bound | driver peak RSS (MB) "
        "| lost | repaid | node removed |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['runs']} | {r['answered']} | {r['requests_429']} | {r['bound_s']:.1f} | "
            f"{r['wall_s']:.1f} | {r['wall_over_bound']:.3f} | {r['driver_peak_rss_mb']:.0f} | "
            f"{r['lost']} | {r['repaid_calls']} | {'yes' if r['node_removed'] else 'no'} |"
        )
    big = rows[-1]
    print(
        json.dumps(
            {
                "wall_over_bound": round(big["wall_over_bound"], 4),
                "lost": sum(r["lost"] for r in rows),
                "repaid_calls": sum(r["repaid_calls"] for r in rows),
                "node_removed": big["node_removed"],
                "driver_peak_rss_mb": round(big["driver_peak_rss_mb"], 1),
                "runs": big["runs"],
                "preset": args.preset,
                "rpm": args.rpm,
                "scaling": [
                    {
                        "runs": r["runs"],
                        "wall_over_bound": round(r["wall_over_bound"], 4),
                        "driver_peak_rss_mb": round(r["driver_peak_rss_mb"], 1),
                    }
                    for r in rows
                ],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
