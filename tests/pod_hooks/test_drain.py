"""triton-drain, the preStop hook: it returns once nothing is in flight, not before.

The first tests serve scripted metrics over real HTTP on loopback; the last one drains the real
local tritonserver while requests are in flight, the sequence the pod replays at shutdown.
"""

from __future__ import annotations

import http.server
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from pod_hooks import drain

from tests.clients import embed
from tests.fakes.http_server import serving

METRICS_TEMPLATE = """\
# HELP nv_inference_pending_request_count Instantaneous number of pending requests
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{{model="minilm",version="1"}} {pending}
nv_inference_pending_request_count{{model="text_embedding",version="1"}} 0
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="text_embedding",version="1"}} {success}
nv_inference_request_failure{{model="text_embedding",version="1"}} 0
nv_inference_exec_count{{model="minilm",version="1"}} {execs}
nv_inference_queue_duration_us{{model="minilm",version="1"}} 123456
"""


class ScriptedMetrics:
    """What the fake endpoint answers: the next state on each scrape, the last one forever."""

    def __init__(self, states: list[tuple[int, int, int]]) -> None:
        self.states = list(states)
        self.scrapes = 0

    def next_text(self) -> str:
        self.scrapes += 1
        pending, success, execs = self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return METRICS_TEMPLATE.format(pending=pending, success=success, execs=execs)


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, ScriptedMetrics]]:
    script = ScriptedMetrics([(0, 0, 0)])

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = script.next_text().encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield f"{url}/metrics", script


def test_parse_activity_sums_pending_and_progress_over_models() -> None:
    activity = drain.parse_activity(METRICS_TEMPLATE.format(pending=3, success=10, execs=4))
    assert activity == drain.Activity(pending_requests=3, progress_count=14)


class StepClock:
    """A clock that moves only when the drain sleeps: its timing is checked exactly, however
    slowly a loaded machine answers the scrapes (wall-clock bounds here were flaky)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_idle_server_is_drained_right_after_the_propagation_wait(metrics_server) -> None:
    url, _ = metrics_server
    clock = StepClock()
    result = drain.drain_server(
        url,
        propagation_s=0.3,
        deadline_s=5,
        quiet_s=0.2,
        poll_interval_s=0.05,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result.idle and result.reason == "idle"
    # Propagation + one quiet interval, no more (to one poll interval).
    assert 0.5 - 1e-9 <= result.waited_s < 0.5 + 0.05


def test_waits_while_requests_are_pending_or_finishing(metrics_server) -> None:
    url, script = metrics_server
    # Pending for a while, then nothing pending but counters still moving, then still.
    script.states = [(2, 0, 0)] * 6 + [(0, 1, 1), (0, 2, 2), (0, 3, 2), (0, 4, 3)] + [(0, 5, 3)]
    result = drain.drain_server(
        url, propagation_s=0, deadline_s=10, quiet_s=0.3, poll_interval_s=0.05
    )
    assert result.idle
    assert result.last_activity == drain.Activity(pending_requests=0, progress_count=8)
    assert script.scrapes >= 11  # it saw every busy state before calling the server idle


def test_gives_up_at_the_deadline_when_work_never_stops(metrics_server) -> None:
    url, script = metrics_server
    script.states = [(1, 0, 0)]
    clock = StepClock()
    result = drain.drain_server(
        url,
        propagation_s=0.1,
        deadline_s=0.8,
        quiet_s=0.2,
        poll_interval_s=0.05,
        clock=clock,
        sleep=clock.sleep,
    )
    assert not result.idle and result.reason == "deadline passed"
    assert 0.8 - 1e-9 <= result.waited_s < 0.8 + 0.05


def test_cpu_time_of_a_busy_server_keeps_it_from_counting_as_idle(metrics_server) -> None:
    # The metrics stay still (one long batch executing), but the server's CPU time grows.
    url, _ = metrics_server
    cpu = iter([0.0, 0.2, 0.4, 0.6, 0.8, 1.0] + [1.0] * 1000)
    result = drain.drain_server(
        url,
        propagation_s=0,
        deadline_s=10,
        quiet_s=0.2,
        poll_interval_s=0.05,
        cpu_seconds=lambda: next(cpu),
    )
    assert result.idle
    assert next(cpu) == 1.0  # it read the CPU time on every poll
    # Four polls saw the CPU time grow (busy), then a whole quiet interval had to pass.
    assert result.waited_s >= 4 * 0.05 + 0.2 - 0.02


def test_process_tree_cpu_seconds_counts_the_children() -> None:
    # Like tritonserver and its Python-backend stubs: the work happens in a child process.
    child_code = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.5: pass"
    parent_code = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {child_code!r}])"
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    seen = 0.0
    try:
        deadline = time.monotonic() + 20
        while parent.poll() is None and time.monotonic() < deadline:
            seen = max(seen, drain.process_tree_cpu_seconds(parent.pid) or 0.0)
            time.sleep(0.05)
    finally:
        parent.kill()
        parent.wait()
    assert seen >= 0.3
    assert drain.process_tree_cpu_seconds(parent.pid) is None


def test_a_server_that_is_gone_counts_as_drained() -> None:
    with socket.socket() as sock:  # a port that nothing listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/metrics"
    result = drain.drain_server(url, propagation_s=0, deadline_s=5, poll_interval_s=0.05)
    assert result.idle and result.reason == "server gone"


def test_a_metrics_endpoint_that_stops_answering_holds_the_stop_until_the_deadline() -> None:
    # A server so stuck that its metrics page hangs may still hold requests: the drain keeps
    # it up until the deadline (each scrape bounded by its timeout) and says why.
    messages: list[str] = []
    with socket.socket() as hung:  # accepts connections (backlog), never answers
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        started = time.monotonic()
        result = drain.drain_server(
            f"http://127.0.0.1:{hung.getsockname()[1]}/metrics",
            propagation_s=0,
            deadline_s=3,
            poll_interval_s=0.05,
            log=messages.append,
        )
        waited = time.monotonic() - started
    assert not result.idle and result.reason == "metrics unreadable"
    # Not before the deadline; after it, by at most one scrape's timeout, with twice that
    # allowed (and 5 s more) for a loaded machine's scheduling: a hang would take forever.
    assert 3 <= waited <= 2 * (3 + drain.SCRAPE_TIMEOUT_S) + 5
    assert any("not answering" in m for m in messages), messages
    assert "metrics unreadable" in messages[-1]


def test_a_busy_gpu_keeps_the_server_from_counting_as_idle() -> None:
    # An ensemble step executing on a GPU: nothing pending, no counter moving, host CPU idle.
    gpu_text = 'nv_gpu_utilization{gpu_uuid="GPU-0"} 0.93\nnv_gpu_utilization{gpu_uuid="GPU-1"} 0\n'
    assert drain.parse_activity(gpu_text).gpu_utilization == 0.93
    busy, idle = drain.Activity(0, 5, 0.93), drain.Activity(0, 5, 0.0)
    activities = iter([busy] * 6 + [idle] * 1000)
    result = drain.drain_server(
        "unused",
        propagation_s=0,
        deadline_s=10,
        quiet_s=0.2,
        poll_interval_s=0.05,
        scrape=lambda url: next(activities),
    )
    assert result.idle
    # The last of six busy polls came 5 intervals in; a whole quiet interval followed it.
    assert result.waited_s >= 5 * 0.05 + 0.2 - 0.02


def test_cli_exit_status_says_whether_the_drain_finished(metrics_server, tmp_path) -> None:
    url, script = metrics_server
    log = tmp_path / "drain.log"
    # --server-pid=0: the exit status is under test, not the CPU check. The default, PID 1, is
    # the container's tritonserver in a pod but every process of a test machine here, whose CPU
    # use under load kept this drain "busy" until its deadline.
    # --http-url= : only the metrics path, never a real server that may listen on port 8000.
    common = [
        f"--metrics-url={url}",
        "--http-url=",
        "--propagation-seconds=0",
        f"--log-file={log}",
        "--server-pid=0",
    ]
    # A deadline far beyond the expected half second: the drain returns as soon as it is idle,
    # and a loaded machine may be slow to serve the scrapes.
    assert drain.main([*common, "--deadline-seconds=60", "--quiet-seconds=0.2"]) == 0
    script.states = [(5, 0, 0)]
    assert drain.main([*common, "--deadline-seconds=0.5", "--quiet-seconds=0.2"]) == 1
    assert "deadline" in log.read_text()


@pytest.mark.server
def test_drain_returns_only_after_in_flight_requests_to_the_real_server_finished(
    triton_server,
) -> None:
    import tritonclient.grpc as grpcclient

    server_pid = triton_server.process.pid
    assert drain.process_tree_cpu_seconds(server_pid) is not None
    client = grpcclient.InferenceServerClient(triton_server.grpc_url)
    texts = [f"request {i} arriving while the pod is asked to stop " * 8 for i in range(48)]
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = [pool.submit(embed, client, "grpc", [text]) for text in texts]
            # Let them get inside the server, then drain as the preStop hook would.
            time.sleep(0.05)
            in_flight_at_start = sum(not f.done() for f in futures)
            result = drain.drain_server(
                triton_server.metrics_url,
                propagation_s=0,
                deadline_s=60,
                quiet_s=1.0,
                cpu_seconds=lambda: drain.process_tree_cpu_seconds(server_pid),
            )
            finished_at_drain_end = sum(f.done() for f in futures)
            embeddings = [f.result(timeout=60) for f in futures]
    finally:
        client.close()
    assert result.idle, result
    assert in_flight_at_start > 0, "nothing was in flight: the test proves nothing"
    assert finished_at_drain_end == len(texts)
    assert all(e.shape == (1, 384) for e in embeddings)
