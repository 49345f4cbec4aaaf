"""The drain against long executions and requests arriving while it runs.

The drain unloads the models and waits until Triton has released them (explicit model-control
mode, which every local server and the pod use): Triton lets a model go only when the last
request holding it has been answered, so the drain sees what no metric shows.

- `long_execution`: batches execute for 5 s with no CPU use (slow_model_repository/, shipped
  beside this module: `sleeper` sleeps in `execute`, as a GPU kernel would run while the host
  idles), one executing and the rest queued behind it when the stop begins. Sent to the plain
  model or through the ensemble `slow_pipeline` (two sleeper steps), every request is answered
  and the server exits 0. With `model_control_mode="none"` the server refuses unloads and the
  drain falls back to watching for quiet (and says so in its log).
- `arrivals_during_drain`: long requests keep arriving for the first seconds of the drain (the
  routers' propagation delay); the drain must return only after the last of them answered.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from pod_hooks.drain import drain_server, process_tree_cpu_seconds

from lab.reliability.load import OK, LoadRecord, infer_once
from lab.reliability.pod_lifecycle import PodLifecycle
from lab.reliability.report import ScenarioResult
from lab.reliability.scenarios.local_stop.scenario import send as send_long_text
from lab.reliability.scenarios.sigterm_in_flight.scenario import (
    start_like_the_pod,
    stop_while_in_flight,
)

SLOW_MODEL_REPOSITORY = Path(__file__).resolve().parent / "slow_model_repository"
SLEEPER_EXECUTE_S = 5.0


def send_number(address: str, model: str, value: float) -> tuple[str, str]:
    rows = np.array([[value]], dtype=np.float32)
    status, message, y = infer_once(address, model, "X", rows, "Y")
    expected = value + (2 if model == "slow_pipeline" else 1)
    if status == OK and (y is None or y.tolist() != [[expected]]):
        return "bad response", f"Y = {y if y is None else y.tolist()}"
    return status, message


def long_execution(
    slow_model_repository: Path,
    lifecycle: PodLifecycle,
    *,
    model: str = "sleeper",
    requests: int = 12,
    model_control_mode: str | None = None,
    drain: bool = True,
    work_dir: Path | None = None,
) -> ScenarioResult:
    """`requests` to `model`: the first alone, the rest 0.5 s later, queued behind its batch;
    the pod's stop 1 s after the first (`drain=False`: a bare SIGTERM, the control).
    `model_control_mode` overrides the local default (explicit, every model loaded)."""
    extra_args = [f"--model-control-mode={model_control_mode}"] if model_control_mode else []
    server = start_like_the_pod(slow_model_repository, lifecycle, work_dir, extra_args)
    record = LoadRecord()

    def one(index: int) -> None:
        sent_at = time.monotonic()
        status, message = send_number(server.grpc_url, model, float(index))
        record.add(sent_at, status, message)

    try:
        with ThreadPoolExecutor(max_workers=requests) as pool:
            futures = [pool.submit(one, 0)]
            time.sleep(0.5)  # the first batch executing in the (first) sleeper
            futures += [pool.submit(one, i) for i in range(1, requests)]
            time.sleep(0.5)  # the rest queued behind it
            in_flight, exit_status, stopped_s = stop_while_in_flight(
                server, lifecycle, futures, drain=drain
            )
    finally:
        server.stop(timeout_s=0)

    failed = len(record.failures())
    drain = server.last_drain
    mechanism = drain.mechanism if drain else "none"
    passed = in_flight > 0 and failed == 0 and exit_status == 0
    return ScenarioResult(
        scenario=f"{SLEEPER_EXECUTE_S:g} s execution without CPU, "
        + ("plain model" if model == "sleeper" else "ensemble")
        + (f", --model-control-mode={model_control_mode}" if model_control_mode else ""),
        load=f"{requests} gRPC request(s) to {model}, one batch executing, the rest queued",
        faults=("drain, then SIGTERM" if drain else "bare SIGTERM")
        + f", with {in_flight} request(s) in flight",
        requests_sent=record.sent,
        requests_failed=failed,
        recovery_s=None,
        passed=passed,
        notes=f"drain by {mechanism}; exited {stopped_s:.1f} s after the stop began "
        f"(status {exit_status})",
        details={
            "in_flight_at_stop": in_flight,
            "stopped_s": stopped_s,
            "exit_status": exit_status,
            "drain_mechanism": mechanism,
            "drain_idle": drain.idle if drain else None,
            "by_status": dict(record.by_status()),
            "failures": record.failure_summary(),
        },
    )


def arrivals_during_drain(
    model_repository: Path,
    lifecycle: PodLifecycle,
    *,
    propagation_s: float = 3.0,
    senders: int = 8,
    work_dir: Path | None = None,
) -> ScenarioResult:
    server = start_like_the_pod(model_repository, lifecycle, work_dir)
    record = LoadRecord()
    stop_sending = threading.Event()
    futures: list[Future[None]] = []

    def sender(worker: int) -> None:
        # Long texts back to back until the routers have let go of the server.
        index = worker
        while not stop_sending.is_set():
            sent_at = time.monotonic()
            status, message = send_long_text(server.grpc_url, index)
            record.add(sent_at, status, message)
            index += senders

    try:
        with ThreadPoolExecutor(max_workers=senders) as pool:
            futures = [pool.submit(sender, w) for w in range(senders)]
            time.sleep(1.0)
            drain_started = time.monotonic()
            # The routers stop sending just before the propagation wait ends.
            timer = threading.Timer(propagation_s - 0.5, stop_sending.set)
            timer.start()
            assert server.process is not None
            pid = server.process.pid
            result = drain_server(
                server.metrics_url,
                propagation_s=propagation_s,
                deadline_s=lifecycle.drain_deadline_s,
                cpu_seconds=lambda: process_tree_cpu_seconds(pid),
                http_url=f"http://{server.http_url}",
            )
            drained_s = time.monotonic() - drain_started
            unfinished_at_drain_end = sum(not f.done() for f in futures)
            exit_status = server.stop(timeout_s=lifecycle.termination_grace_s)
            for future in futures:
                future.result()
    finally:
        stop_sending.set()
        server.stop(timeout_s=0)

    failed = len(record.failures())
    passed = failed == 0 and result.idle and unfinished_at_drain_end == 0 and exit_status == 0
    return ScenarioResult(
        scenario="requests arriving during the drain",
        load=f"{senders} gRPC clients sending 200-word texts back to back",
        faults=f"drain with {propagation_s:g} s propagation; clients stop 0.5 s before its end; "
        "then SIGTERM",
        requests_sent=record.sent,
        requests_failed=failed,
        recovery_s=None,
        passed=passed,
        notes=f"drain by {result.mechanism} returned after {drained_s:.1f} s with "
        f"{unfinished_at_drain_end} requests unanswered; exit status {exit_status}",
        details={
            "drain_idle": result.idle,
            "drain_mechanism": result.mechanism,
            "unfinished_at_drain_end": unfinished_at_drain_end,
            "exit_status": exit_status,
            "failures": record.failure_summary(),
        },
    )
