"""Run a real tritonserver on this machine: start, wait until ready, stop cleanly."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from pod_hooks.drain import DrainResult, drain_server, process_tree_cpu_seconds

from inference_tools import subprocesses
from inference_tools.paths import work_dir as default_work_dir
from inference_tools.subprocesses import ManagedService, dies_with_this_process, stop_process
from inference_tools.triton_runtime import TritonRuntime, prepare_runtime

LOG = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
LOG_TAIL_LINES = 40
# Triton's own HTTP endpoint stays on loopback behind the HTTP guard, as in the pod.
GUARD_START_TIMEOUT_SECONDS = 30.0
# Explicit model-control mode with every model loaded at start: what the stop's exact drain
# needs (it unloads the models and waits until Triton has answered their last requests).
EXACT_DRAIN_ARGS = ("--model-control-mode=explicit", "--load-model=*")


class ServerStartError(RuntimeError):
    pass


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: each socket stays bound until all are chosen, or the kernel
    may hand the same port out twice (seen: gRPC and metrics on one port, Triton refusing)."""
    sockets = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_in_use(address: str, port: int) -> bool:
    """Whether something listens on `address:port`.

    SO_REUSEADDR, as tritonserver binds its own ports: connections that a stopped server left
    in TIME_WAIT (for up to a minute after it had clients) do not make the port busy, a
    listener does.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
            sock.listen()
        except OSError:
            return True
    return False


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    if not path.is_file():
        return "(no log written)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class LocalTritonServer(ManagedService):
    """A tritonserver process serving a model repository on loopback ports.

    Ports given as 0 are picked free. Use as a context manager, or call `start()` and `stop()`.
    The server ends when the thread that started it ends (killed outright included): start it
    from the main thread, or from one that outlives it.
    """

    def __init__(
        self,
        model_repository: Path,
        *,
        http_port: int = 0,
        grpc_port: int = 0,
        metrics_port: int = 0,
        log_verbose: int = 0,
        extra_args: Sequence[str] = (),
        work_dir: Path | None = None,
        address: str = LOOPBACK,
        env: dict[str, str] | None = None,
        admin_key: str | None = None,
        http_guard: bool = True,
    ) -> None:
        self.model_repository = model_repository
        # `http_port` is where clients connect: the HTTP guard (pod_hooks/http_guard.py), which
        # refuses the bodies Triton 2.51 crashes on and forwards the rest to Triton's own port.
        # Ports picked here must differ from each other and from the ones given.
        given = {port for port in (http_port, grpc_port, metrics_port) if port}
        spare = iter([port for port in free_ports(4 + len(given)) if port not in given])
        self.http_port = http_port or next(spare)
        self.http_guard = http_guard
        self.triton_http_port = next(spare) if http_guard else self.http_port
        self.grpc_port = grpc_port or next(spare)
        self.metrics_port = metrics_port or next(spare)
        self.log_verbose = log_verbose
        self.extra_args = list(extra_args)
        self.work_dir = work_dir or default_work_dir()
        self.address = address
        self.extra_env = env or {}
        # The x-triton-admin-key value where extra_args restrict the repository API: the drain
        # at stop unloads the models through it.
        self.admin_key = admin_key
        self.log_path = self.work_dir / "logs" / f"tritonserver-{self.http_port}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.guard_process: subprocess.Popen[bytes] | None = None
        self.last_drain: DrainResult | None = None  # what the last stop's drain decided

    @property
    def http_url(self) -> str:
        return f"{LOOPBACK}:{self.http_port}"

    @property
    def triton_http_url(self) -> str:
        """Triton's own HTTP endpoint, behind the guard: what a request reaching past it meets."""
        return f"{LOOPBACK}:{self.triton_http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{LOOPBACK}:{self.metrics_port}/metrics"

    def model_control_args(self) -> list[str]:
        """Explicit mode with every model loaded, unless the caller chose a mode."""
        if any(arg.startswith("--model-control-mode") for arg in self.extra_args):
            return []
        return list(EXACT_DRAIN_ARGS)

    def command(self, runtime: TritonRuntime) -> list[str]:
        return [
            str(runtime.tritonserver),
            f"--model-repository={self.model_repository}",
            f"--backend-directory={runtime.backends_dir}",
            f"--http-address={LOOPBACK if self.http_guard else self.address}",
            f"--http-port={self.triton_http_port}",
            f"--grpc-address={self.address}",
            f"--grpc-port={self.grpc_port}",
            f"--metrics-address={self.address}",
            f"--metrics-port={self.metrics_port}",
            f"--log-verbose={self.log_verbose}",
            *self.model_control_args(),
            *self.extra_args,
        ]

    def start(self, timeout_s: float = 180.0) -> None:
        # Checked first: otherwise the readiness poll could be answered by whatever holds the port.
        busy = [
            f"{name} port {port}"
            for name, port in (
                ("HTTP", self.http_port),
                ("Triton's HTTP", self.triton_http_port),
                ("gRPC", self.grpc_port),
                ("metrics", self.metrics_port),
            )
            if port_in_use(self.address, port)
        ]
        if busy:
            raise ServerStartError(
                f"{', '.join(busy)} already in use on {self.address}: stop the other server or "
                "choose other ports (--http-port, --grpc-port, --metrics-port)"
            )
        runtime = prepare_runtime(self.work_dir)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = self.command(runtime)
        LOG.info("starting %s", " ".join(command))
        with self.log_path.open("wb") as log_file:
            self.process = subprocess.Popen(
                # SIGTERM if we die: a graceful stop, which also ends the Python-backend stubs
                # (they exit when tritonserver has gone) and frees their shared memory.
                dies_with_this_process(command),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**runtime.env, **self.extra_env},
                # Own process group: Ctrl-C in a terminal reaches us, and we decide how to stop.
                start_new_session=True,
            )
        try:
            if self.http_guard:
                self._start_guard()
            self.wait_until_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def guard_command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "pod_hooks.http_guard",
            f"--listen={self.address}:{self.http_port}",
            f"--upstream={LOOPBACK}:{self.triton_http_port}",
        ]

    def _start_guard(self) -> None:
        guard_log = self.log_path.with_name(f"http-guard-{self.http_port}.log")
        with guard_log.open("wb") as log_file:
            # A session of its own like Triton's: Ctrl-C must not stop it before the drain,
            # which unloads the models through it. Like Triton, it ends if we are killed.
            self.guard_process = subprocess.Popen(
                dies_with_this_process(self.guard_command()),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        why = subprocesses.wait_until_ready(
            lambda: port_in_use(self.address, self.http_port),
            self.guard_process,
            GUARD_START_TIMEOUT_SECONDS,
            interval_s=0.05,
        )
        if why is not None:
            raise ServerStartError(
                f"the HTTP guard did not start listening on {self.address}:{self.http_port} "
                f"({why}).\nLast lines of {guard_log}:\n{log_tail(guard_log)}"
            )

    def is_ready(self) -> bool:
        return self._get_status(f"http://{self.http_url}/v2/health/ready") == 200

    def wait_until_ready(self, timeout_s: float) -> None:
        why = subprocesses.wait_until_ready(self.is_ready, self.process, timeout_s)
        if why is None:
            LOG.info(
                "tritonserver ready: HTTP %s, gRPC %s, metrics %s",
                self.http_url,
                self.grpc_url,
                self.metrics_url,
            )
            return
        if self.process is not None and self.process.poll() is not None:
            raise ServerStartError(
                f"tritonserver {why} while starting.\n"
                f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
            )
        raise ServerStartError(
            f"tritonserver was {why}. "
            f"Models not ready: {self.models_not_ready() or 'unknown'}.\n"
            f"Last lines of {self.log_path}:\n{log_tail(self.log_path)}"
        )

    def models_not_ready(self) -> list[str]:
        request = urllib.request.Request(
            f"http://{self.http_url}/v2/repository/index", data=b"{}", method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                index = json.load(response)
        except (OSError, ValueError):
            return []
        not_ready = []
        for entry in index:
            if entry.get("state") == "READY":
                continue
            reason = entry.get("reason")
            detail = entry.get("state", "UNKNOWN") + (f": {reason}" if reason else "")
            not_ready.append(f"{entry['name']} ({detail})")
        return not_ready

    @staticmethod
    def _get_status(url: str) -> int | None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)
        except OSError:
            return None

    def stop(
        self, timeout_s: float = 30.0, *, drain: bool = False, drain_deadline_s: float = 40.0
    ) -> int | None:
        """SIGTERM, wait up to `timeout_s`, then SIGKILL. Returns the exit status.

        With `drain`, first wait (up to `drain_deadline_s`) until no request is in flight:
        Triton 2.51 fails the ensemble requests it holds when it gets SIGTERM. The drain is the
        pod's preStop: exact (unloading the models) in explicit model-control mode, else
        watching for quiet, CPU check of the server's processes included.
        """
        process = self.process
        if drain and process is not None and process.poll() is None:
            self.last_drain = drain_server(
                self.metrics_url,
                propagation_s=0.0,
                deadline_s=drain_deadline_s,
                cpu_seconds=lambda: process_tree_cpu_seconds(process.pid),
                # Triton's own port, as the pod's preStop does: the drain needs no guard.
                http_url=f"http://{self.triton_http_url}",
                admin_key=self.admin_key,
                log=LOG.info,
            )
        # The process group holds the Python backend stubs too; leave none behind.
        status = stop_process(process, timeout_s, kill_group=True)
        # The guard goes last: the drain above reaches Triton through it.
        stop_process(self.guard_process, timeout_s)
        return status

    def stop_on_exit(self, *, clean: bool) -> None:
        # A block that ended normally may have left requests in flight (other threads' clients):
        # drain them like every other stop. One that raised stops at once.
        self.stop(drain=clean)
