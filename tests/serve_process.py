"""`inference-tools serve` run as a user runs it, in the background, on free loopback ports."""

from __future__ import annotations

import shlex
import signal
import subprocess
import threading
from pathlib import Path

from inference_tools.local_server import free_ports
from inference_tools.subprocesses import ManagedService, stop_process

READY_LINE = "Press Ctrl-C to stop."  # what `serve` prints once every model is ready


class ServeProcess(ManagedService):
    """`executable ... serve ...` with `--http-port`, `--grpc-port` and `--metrics-port` added
    right after `serve`; ready when the command says so, stopped as a user stops it (Ctrl-C)."""

    def __init__(self, argv: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.http_port, self.grpc_port, self.metrics_port = free_ports(3)
        ports = [f"--http-port={self.http_port}", f"--grpc-port={self.grpc_port}"]
        ports.append(f"--metrics-port={self.metrics_port}")
        at = argv.index("serve") + 1
        self.argv = [*argv[:at], *ports, *argv[at:]]
        self.cwd, self.env = cwd, env
        self.output: list[str] = []
        self._ready = threading.Event()
        self.process: subprocess.Popen[str] | None = None

    @property
    def http_url(self) -> str:
        return f"127.0.0.1:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def start(self, timeout_s: float = 300) -> None:
        self.process = subprocess.Popen(
            self.argv,
            cwd=self.cwd,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(timeout_s):
            self.stop()
            raise AssertionError(
                f"{shlex.join(self.argv)} was not ready after {timeout_s} s:\n{self.log}"
            )

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith(READY_LINE):
                self._ready.set()

    @property
    def log(self) -> str:
        return "".join(self.output)

    def stop(self) -> int | None:
        """Ctrl-C, then its exit status (killed after two minutes: then not 0)."""
        return stop_process(self.process, timeout_s=120, stop_signal=signal.SIGINT)
