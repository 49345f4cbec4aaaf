"""Stop `inference-tools serve` the ways people stop it, with long requests inside the server.

`inference-tools serve` runs as its own process group, as a terminal or a service manager starts
it. Long requests (about 200 words each) are sent at once over gRPC, and while they are inside
the server the stop arrives: SIGTERM to the whole process group (systemd, `kill -- -PGID`),
SIGTERM to the serve process alone, or SIGINT to the group (Ctrl-C in a terminal). Every request
must succeed, `serve` must exit with status 0 within the drain deadline plus Triton's exit
timeout, and no Python-backend stub may outlive it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from inference_tools.local_server import LOOPBACK, free_ports
from inference_tools.paths import work_dir as default_work_dir
from inference_tools.subprocesses import answers, wait_until_ready

from lab.reliability.load import (
    EMBEDDING_SIZE,
    MODEL,
    OK,
    LoadRecord,
    infer_once,
)
from lab.reliability.processes import STUB_NAME, children, command_line
from lab.reliability.report import ScenarioResult

# name: (signal, to the whole process group?, how people send it)
STOPS = {
    "sigterm-group": (signal.SIGTERM, True, "SIGTERM to the process group (systemd)"),
    "sigterm": (signal.SIGTERM, False, "SIGTERM to `inference-tools serve`"),
    "ctrl-c": (signal.SIGINT, True, "SIGINT to the process group (Ctrl-C in a terminal)"),
}
STARTUP_TIMEOUT_S = 300.0
# `serve` stops with the drain's default deadline (40 s) and then waits up to 30 s for Triton.
EXIT_BOUND_S = 40.0 + 30.0
WORDS_PER_TEXT = 200


def long_text(index: int) -> bytes:
    words = (f"request{index} word{w % 50}" for w in range(WORDS_PER_TEXT // 2))
    return " ".join(words).encode()


def send(address: str, index: int) -> tuple[str, str]:
    rows = np.array([[long_text(index)]], dtype=object)
    status, message, embedding = infer_once(address, MODEL, "TEXT", rows, "EMBEDDING")
    if status == OK and (embedding is None or embedding.shape != (1, EMBEDDING_SIZE)):
        return "bad response", f"EMBEDDING shape {getattr(embedding, 'shape', None)}"
    return status, message


def wait_ready(process: subprocess.Popen[bytes], http_port: int, log_path: Path) -> None:
    url = f"http://{LOOPBACK}:{http_port}/v2/health/ready"
    problem = wait_until_ready(lambda: answers(url), process, STARTUP_TIMEOUT_S)
    if problem:
        raise RuntimeError(f"serve {problem}; see {log_path}")


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def server_tree(serve_pid: int) -> tuple[int, list[int]]:
    """tritonserver's pid under `serve`, and its stub processes."""
    for pid in children(serve_pid):
        command = command_line(pid)
        if command and command[0].endswith("tritonserver"):
            stubs = [c for c in children(pid) if command_line(c)[:1][0].endswith(STUB_NAME)]
            return pid, stubs
    raise LookupError(f"no tritonserver under process {serve_pid}")


def start_serve(
    model_repository: Path,
    ports: dict[str, int],
    log_path: Path,
    launcher: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """`inference-tools serve` in a process group of its own, as a terminal starts it;
    `launcher`: a command that execs the rest (to start it with what a parent hands down)."""
    command = [
        *launcher,
        sys.executable,
        "-m",
        "inference_tools.cli",
        "serve",
        "--no-build",
        f"--model-repository={model_repository}",
        f"--http-port={ports['http']}",
        f"--grpc-port={ports['grpc']}",
        f"--metrics-port={ports['metrics']}",
    ]
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )


def run(
    model_repository: Path,
    *,
    stop: str = "sigterm-group",
    requests: int = 48,
    work_dir: Path | None = None,
) -> ScenarioResult:
    stop_signal, to_group, stop_words = STOPS[stop]
    work = work_dir or default_work_dir()
    ports = dict(zip(("http", "grpc", "metrics"), free_ports(3), strict=True))
    log_path = work / "logs" / f"serve-{ports['http']}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    serve = start_serve(model_repository, ports, log_path)
    record = LoadRecord()
    try:
        wait_ready(serve, ports["http"], log_path)
        server_pid, stubs = server_tree(serve.pid)
        address = f"{LOOPBACK}:{ports['grpc']}"

        def one(index: int) -> None:
            sent_at = time.monotonic()
            status, message = send(address, index)
            record.add(sent_at, status, message)

        with ThreadPoolExecutor(max_workers=requests) as pool:
            futures = [pool.submit(one, i) for i in range(requests)]
            time.sleep(0.5)  # inside the server: connected, tokenized or queued
            in_flight = sum(not f.done() for f in futures)
            stop_at = time.monotonic()
            if to_group:
                os.killpg(serve.pid, stop_signal)
            else:
                serve.send_signal(stop_signal)
            try:
                exit_status: int | None = serve.wait(timeout=EXIT_BOUND_S + 30)
            except subprocess.TimeoutExpired:
                exit_status = None
            stopped_s = time.monotonic() - stop_at
            for future in futures:
                future.result()
        orphans = [pid for pid in [server_pid, *stubs] if alive(pid)]
    finally:
        if serve.poll() is None:
            os.killpg(serve.pid, signal.SIGKILL)
            serve.wait()

    failed = len(record.failures())
    passed = (
        failed == 0
        and exit_status == 0
        and stopped_s < EXIT_BOUND_S
        and not orphans
        and in_flight > 0
    )
    return ScenarioResult(
        scenario=f"local stop: {stop}",
        load=f"{requests} requests of {WORDS_PER_TEXT} words at once over gRPC",
        faults=f"{stop_words} with {in_flight} requests in flight",
        requests_sent=record.sent,
        requests_failed=failed,
        recovery_s=None,
        passed=passed,
        notes=f"serve exited {stopped_s:.1f} s after the signal (status {exit_status}); "
        f"{len(orphans)} of {1 + len(stubs)} server processes left behind",
        details={
            "in_flight_at_stop": in_flight,
            "stopped_s": stopped_s,
            "exit_status": exit_status,
            "orphans": orphans,
            "stubs": stubs,
            "failures": record.failure_summary(),
            "log": str(log_path),
        },
    )
