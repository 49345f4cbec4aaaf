"""What the drain sees and what it cannot: long executions, and requests arriving while it runs.

- `long_execution`: a batch executes for 5 s with no CPU use (slow_model_repository/, shipped
  beside this module: `sleeper` sleeps in `execute`, as a GPU kernel would
  run while the host idles). Sent to
  the plain model, Triton itself holds SIGTERM until the batch has answered: every request
  succeeds. Sent through the ensemble `slow_pipeline` (two sleeper steps), the step that follows
  the sleeping one is refused after SIGTERM: the drain's documented limit, since Triton 2.51
  exports no count of executing requests and a sleep uses neither CPU nor GPU.
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

from inference_tools.reliability.load import OK, LoadRecord, infer_once
from inference_tools.reliability.local_stop import send as send_long_text
from inference_tools.reliability.pod_lifecycle import PodLifecycle
from inference_tools.reliability.report import ScenarioResult
from inference_tools.reliability.sigterm_in_flight import start_like_the_pod, stop_like_the_pod

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
    requests: int = 4,
    work_dir: Path | None = None,
) -> ScenarioResult:
    server = start_like_the_pod(slow_model_repository, lifecycle, work_dir)
    record = LoadRecord()

    def one(index: int) -> None:
        sent_at = time.monotonic()
        status, message = send_number(server.grpc_url, model, float(index))
        record.add(sent_at, status, message)

    try:
        with ThreadPoolExecutor(max_workers=requests) as pool:
            futures = [pool.submit(one, i) for i in range(requests)]
            time.sleep(1.0)  # one batch executing in the (first) sleeper
            in_flight = sum(not f.done() for f in futures)
            exit_status, stopped_s = stop_like_the_pod(server, lifecycle)
            for future in futures:
                future.result()
    finally:
        server.stop(timeout_s=0)

    failed = len(record.failures())
    plain = model == "sleeper"
    passed = in_flight > 0 and (failed == 0 and exit_status == 0 if plain else failed > 0)
    return ScenarioResult(
        scenario=f"{SLEEPER_EXECUTE_S:g} s execution without CPU, "
        + ("plain model" if plain else "ensemble step (limit)"),
        load=f"{requests} gRPC request(s) to {model}",
        faults=f"drain, then SIGTERM, with {in_flight} request(s) executing",
        requests_sent=record.sent,
        requests_failed=failed,
        recovery_s=None,
        passed=passed,
        notes=(
            "Triton answers the executing batch before it exits"
            if plain
            else "the next step is refused: no CPU or GPU trace, no exported count"
        )
        + f"; exited {stopped_s:.1f} s after the stop began (status {exit_status})",
        details={
            "in_flight_at_stop": in_flight,
            "stopped_s": stopped_s,
            "exit_status": exit_status,
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
        notes=f"drain returned after {drained_s:.1f} s with {unfinished_at_drain_end} requests "
        f"unanswered; exit status {exit_status}",
        details={
            "drain_idle": result.idle,
            "unfinished_at_drain_end": unfinished_at_drain_end,
            "exit_status": exit_status,
            "failures": record.failure_summary(),
        },
    )
