"""A multi-node Ray cluster on this machine, and sweeps driven against it from outside.

``ray.cluster_utils.Cluster`` starts a head node and worker nodes as separate raylets (each with
its own object store, resources and worker processes); worker nodes get fake ``GPU`` resources,
so generator actors are placed as on a GPU cluster while their tiny models run on the CPU.

This process never calls ``ray.init`` (the suite's ``ray_local`` may already own it): sweeps
run as driver processes (``python -m izero sweep`` / ``python jobs/sweep.py`` with
``RAY_ADDRESS``), and the cluster is observed through Ray's state API on the head's dashboard
and through the simulated server, which this process owns and which counts every request.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
KEY = "sk-cluster-test-0123456789-never-logged"
KEY_ENV = "IZERO_CLUSTER_TEST_KEY"
TASKS = ("sum", "first_word_letter")
HEAD_CPUS = 2
GPU_NODES = 3
#: Columns that make a results row (the same sweep must give the same rows).
ROW_FIELDS = ("task", "method", "seed", "round", "eval_index", "instruction", "dev_score")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LocalCluster:
    """A CPU head (driver, scoring workers, limiter, proposals) and ``GPU_NODES`` worker nodes
    of one fake GPU and one CPU each. Jobs are submitted to the head's dashboard."""

    def __init__(self, root: Path):
        from ray.cluster_utils import Cluster

        self.root = root
        self.cluster = Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={
                "num_cpus": HEAD_CPUS,
                "include_dashboard": True,  # serves the state API the tests read
                "dashboard_host": "127.0.0.1",
                "dashboard_port": _free_port(),
                # its job agent's default port may be held by another Ray on this machine
                "dashboard_agent_listen_port": _free_port(),
            },
        )
        self.head_id = self.cluster.head_node.node_id
        self.gpu_nodes: dict[str, Any] = {}
        for _ in range(GPU_NODES):
            self.add_gpu_node()
        self.dashboard = f"http://{self.cluster.webui_url}"

    @property
    def address(self) -> str:
        return self.cluster.address

    def add_gpu_node(self) -> str:
        node = self.cluster.add_node(num_cpus=1, num_gpus=1)
        self.gpu_nodes[node.node_id] = node
        return node.node_id

    def remove_node(self, node_id: str) -> None:
        """The node is lost: its raylet and every process it started are killed (SIGKILL)."""
        node = self.gpu_nodes.pop(node_id)
        self.cluster.remove_node(node, allow_graceful=False)

    def actors(self, class_name: str) -> list[Any]:
        """Every actor of that class the cluster knows (alive, restarting or dead)."""
        from ray.util.state import list_actors

        return list_actors(
            address=self.dashboard,
            filters=[("class_name", "=", class_name)],
            detail=True,
            limit=1000,
            raise_on_missing_output=False,
        )

    def shutdown(self) -> None:
        self.cluster.shutdown()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    """A head and three GPU worker nodes, shared by the tests of a module (starting one takes
    several seconds per node); a test that removes a node puts a new one in its place."""
    root = Path(tempfile.mkdtemp(prefix="izc", dir="/tmp"))  # short: raylet socket paths
    env = {
        # Ray notes "the latest cluster" in <RAY_TMPDIR or /tmp>/ray/ray_current_cluster, where
        # a plain ray.init() of any other process on this machine would find it: keep it here.
        "RAY_TMPDIR": str(root),
        "RAY_USAGE_STATS_ENABLED": "0",
        # the nodes' environment, which job drivers inherit (a Kubernetes secret, on a cluster)
        KEY_ENV: KEY,
        # `ray job stop` sends SIGTERM, then SIGKILL this much later (Ray's default: 3 s)
        "RAY_JOB_STOP_WAIT_TIME_S": "60",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    local = LocalCluster(root)
    try:
        yield local
    finally:
        local.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def task_objects():
    from izero.tasks import load_task

    return [load_task(t) for t in TASKS]


def start_server(tasks, **options):
    """The simulated endpoint (its own process), knowing ``tasks``, requiring :data:`KEY`."""
    from izero.blackbox import SimulatedOptions, SimulatedServer
    from izero.tasks.builtin import BUILTIN_TASKS

    server = SimulatedServer(
        tasks=tasks,
        keywords={t.name: BUILTIN_TASKS[t.name].keywords for t in tasks},
        options=SimulatedOptions(api_key=KEY, seed=0, **options),
        in_subprocess=True,
    )
    server.start()
    return server


def write_config(path: Path, *, base_url: str, out: Path, rpm: float, **generator) -> Path:
    raw = {
        "name": "cluster",
        "tasks": list(TASKS),
        "seeds": [0],
        "methods": ["instructzero", "random"],
        "budget": {"preset": "smoke"},
        "generator": {"model": "tiny:llama", "device": "cpu", "max_new_tokens": 12, **generator},
        "blackbox": {
            "backend": "openai",
            "base_url": base_url,
            "model": "izero-sim",
            "api_key_env": KEY_ENV,
            "rpm": rpm,
            "concurrency": 16,
        },
        "output": {"path": str(out)},
    }
    path.write_text(yaml.safe_dump(raw))
    return path


@dataclass
class Driver:
    """A sweep submitted as a Ray job (``ray job submit``): its driver runs on the head."""

    client: Any
    job_id: str

    def status(self) -> str:
        return str(self.client.get_job_status(self.job_id).value)

    def alive(self) -> bool:
        return self.status() in ("PENDING", "RUNNING")

    def wait(self, timeout: float = 420) -> str:
        """Wait for the job to end; returns its final status (``SUCCEEDED``, ``FAILED``,
        ``STOPPED``)."""
        deadline = time.time() + timeout
        while self.alive():
            if time.time() > deadline:
                self.client.stop_job(self.job_id)
                raise AssertionError(f"the sweep did not finish in {timeout}s:\n{self.output()}")
            time.sleep(0.5)
        return self.status()

    def stop(self) -> None:
        """``ray job stop``: SIGTERM to the driver, SIGKILL ``RAY_JOB_STOP_WAIT_TIME_S`` later."""
        self.client.stop_job(self.job_id)

    def info(self) -> Any:
        return self.client.get_job_info(self.job_id)

    def node(self, cluster: LocalCluster) -> str:
        """The node whose raylet the driver is attached to (with several raylets on one host,
        ``ray.init`` may pick any of them, not necessarily the head)."""
        from ray.util.state import list_workers

        pid = int(wait_until(lambda: self.info().driver_info, timeout=60, what="driver").pid)
        workers = list_workers(
            address=cluster.dashboard,
            filters=[("pid", "=", pid), ("worker_type", "=", "DRIVER")],
            raise_on_missing_output=False,
        )
        assert len(workers) == 1, workers
        return workers[0].node_id

    def logs(self) -> str:
        return self.client.get_job_logs(self.job_id)

    def output(self) -> str:
        """The end of the logs, for assertion messages."""
        return self.logs()[-6000:]


def start_driver(cluster: LocalCluster, config: Path, *extra: str) -> Driver:
    """``python jobs/sweep.py --config ...`` submitted to ``cluster`` as a Ray job. The API key
    reaches the driver as it does on a real cluster: from the node's environment, not the
    job's parameters."""
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(cluster.dashboard)
    script = REPO / "jobs" / "sweep.py"
    entrypoint = " ".join(
        [sys.executable, str(script), "--config", str(config), "--no-report", *extra]
    )
    deadline = time.time() + 120
    while True:  # the job agent comes up a little after the dashboard
        try:
            job_id = client.submit_job(
                entrypoint=entrypoint, runtime_env={"env_vars": {"PYTHONUNBUFFERED": "1"}}
            )
            break
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.time() > deadline:
                raise
            time.sleep(1)
    return Driver(client, job_id)


def wait_until(predicate, *, timeout: float, what: str, driver: Driver | None = None) -> Any:
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if driver is not None and not driver.alive():
            raise AssertionError(f"the sweep ended before {what}:\n{driver.output()}")
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def answered(server) -> int:
    return len(server.stats()["ok_keys"])


def rows(out: Path) -> list[tuple]:
    """The evaluations of a finished sweep, sorted, as comparable tuples."""
    from izero.results import ResultsStore

    table = ResultsStore(str(out)).read_evaluations().to_pylist()
    return sorted(tuple(json.dumps(r[f]) for f in ROW_FIELDS) for r in table)


def slots(table: list[tuple]) -> list[tuple]:
    """Which evaluations a sweep holds: (task, method, seed, round, index) of each row."""
    return sorted(row[:5] for row in table)


def check_against(reference, out: Path, keys: list[str]) -> None:
    """The sweep at ``out`` holds every evaluation of the uninterrupted ``reference`` and paid
    each call once: the same rows (a run's proposals depend only on its own history and seed,
    and generation is deterministic), the same requests answered, none of them twice."""
    got = rows(out)
    assert slots(got) == slots(reference.rows)  # every evaluation is there, once
    assert len(keys) == len(set(keys)), "a call was paid twice"
    assert got == reference.rows
    assert sorted(keys) == reference.keys


def new_actors(cluster: LocalCluster, class_name: str, before: set[str]) -> list[Any]:
    return [a for a in cluster.actors(class_name) if a.actor_id not in before]


def actor_ids(cluster: LocalCluster, *class_names: str) -> set[str]:
    return {a.actor_id for name in class_names for a in cluster.actors(name)}
