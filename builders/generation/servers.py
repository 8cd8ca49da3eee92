"""Local model servers on 127.0.0.1 (`local`: transformers serve, `batched`: mathforge's batch server): start, wait, stop."""
from __future__ import annotations

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

from mathforge.errors import InputError


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
                                        start_new_session=True)
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
