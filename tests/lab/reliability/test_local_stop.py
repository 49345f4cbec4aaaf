"""`inference-tools serve` stopped the ways people stop it, long requests inside: none lost;
stopped by Ctrl-C whatever it inherited; killed outright, it leaves no server behind."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from inference_tools.local_server import free_ports
from lab.reliability.processes import children, command_line
from lab.reliability.scenarios.local_stop import scenario as local_stop

pytestmark = pytest.mark.server

# What a shell without job control hands its background commands (SIGINT ignored), plus a
# blocked SIGINT, which exec keeps too; then the rest of the command line runs with them.
INHERIT_SIGINT_IGNORED_AND_BLOCKED = [
    sys.executable,
    "-c",
    "import os, signal, sys\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})\n"
    "os.execv(sys.argv[1], sys.argv[1:])",
]
# Triton's exit timeout (30 s) bounds a graceful stop; the rest is margin for a loaded machine.
GONE_WITHIN_S = 60.0
SHARED_MEMORY = Path("/dev/shm")


@pytest.mark.parametrize("stop", sorted(local_stop.STOPS))
def test_every_local_stop_drains_before_triton_gets_the_signal(model_repository, stop):
    result = local_stop.run(model_repository, stop=stop)
    details = result.details
    assert details["in_flight_at_stop"] > 0, "nothing was in flight: the test proves nothing"
    assert result.requests_failed == 0, details["failures"]
    assert details["exit_status"] == 0, details["log"]
    assert details["stopped_s"] < local_stop.EXIT_BOUND_S
    assert details["stubs"], "no Python-backend stub was found: the orphan check proves nothing"
    assert details["orphans"] == []


@pytest.fixture
def digits_repository(model_repository: Path, tmp_path: Path) -> Path:
    """The small model alone (one Python-backend stub): a server that starts in seconds."""
    repository = tmp_path / "models"
    shutil.copytree(model_repository / "digits", repository / "digits")
    return repository


@contextmanager
def _serve(
    repository: Path, tmp_path: Path, launcher: list[str] | None = None
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    ports = dict(zip(("http", "grpc", "metrics"), free_ports(3), strict=True))
    log_path = tmp_path / "serve.log"
    serve = local_stop.start_serve(repository, ports, log_path, launcher or [])
    try:
        local_stop.wait_ready(serve, ports["http"], log_path)
        yield serve, log_path
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()


def _gone(pids: list[int], within_s: float) -> list[int]:
    """The pids still alive after up to `within_s` (none: returns as soon as all have gone)."""
    deadline = time.monotonic() + within_s
    while (left := [pid for pid in pids if local_stop.alive(pid)]) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


def test_ctrl_c_stops_serve_started_with_sigint_ignored_and_blocked(
    digits_repository: Path, tmp_path: Path
) -> None:
    with _serve(digits_repository, tmp_path, INHERIT_SIGINT_IGNORED_AND_BLOCKED) as (serve, log):
        server_pid, stubs = local_stop.server_tree(serve.pid)
        serve.send_signal(signal.SIGINT)
        try:
            status = serve.wait(timeout=local_stop.EXIT_BOUND_S)
        except subprocess.TimeoutExpired:
            status = None
        assert status == 0, f"serve ignored Ctrl-C:\n{log.read_text()}"
        assert _gone([server_pid, *stubs], within_s=0) == []


def test_killed_serve_leaves_no_tritonserver_or_stub(
    digits_repository: Path, tmp_path: Path
) -> None:
    with _serve(digits_repository, tmp_path) as (serve, _):
        server_pid, stubs = local_stop.server_tree(serve.pid)
        assert stubs, "no Python-backend stub was found: the test proves nothing"
        # A stub's second argument names its shared-memory region, which a server killed
        # outright would leave in /dev/shm.
        regions = [SHARED_MEMORY / command_line(stub)[2] for stub in stubs]
        assert all(region.exists() for region in regions), regions
        # The HTTP guard in front of Triton's port, in a session of its own as well.
        guards = [pid for pid in children(serve.pid) if "pod_hooks.http_guard" in command_line(pid)]
        serve.send_signal(signal.SIGKILL)
        serve.wait()
        assert _gone([server_pid, *stubs, *guards], GONE_WITHIN_S) == []
        assert [region for region in regions if region.exists()] == []
