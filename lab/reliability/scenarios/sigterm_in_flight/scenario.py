"""Stop a single server while requests are inside it: drained first, nothing accepted is lost.

A burst of requests is sent over HTTP and gRPC; once they are inside the server, it is stopped
the way the container and `inference-tools serve` stop it (drain, then SIGTERM with the
manifest's --exit-timeout-secs). Every request sent before the stop must succeed, and the
process must exit within the timeout.

With `drain=False` a burst meets a bare SIGTERM: the control that shows what the drain
prevents. Run it over gRPC only: on SIGTERM, Triton 2.51 first waits for its open HTTP
connections to close (up to --exit-timeout-secs) and keeps executing meanwhile, so an HTTP request
in flight shelters every other request; with none open, the models stop at once and the ensemble
requests inside fail.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from inference_tools.local_server import LocalTritonServer

from lab.reliability.load import PROTOCOL_NAMES, LoadRecord, embedding_client
from lab.reliability.pod_lifecycle import PodLifecycle
from lab.reliability.report import ScenarioResult

# The stop begins when the first answer of the burst arrives: the server is then provably at
# work on it, and the rest (more rows than one batch of the encoder) is still inside.
FIRST_ANSWER_TIMEOUT_S = 60.0


def start_like_the_pod(
    model_repository: Path,
    lifecycle: PodLifecycle,
    work_dir: Path | None = None,
    extra_args: Sequence[str] = (),
) -> LocalTritonServer:
    """A local server with the Deployment's exit timeout, started and ready."""
    server = LocalTritonServer(
        model_repository,
        work_dir=work_dir,
        extra_args=[f"--exit-timeout-secs={lifecycle.exit_timeout_s:g}", *extra_args],
    )
    server.start()
    return server


def stop_like_the_pod(
    server: LocalTritonServer, lifecycle: PodLifecycle, *, drain: bool = True
) -> tuple[int | None, float]:
    """The pod's stop (drain up to its deadline, SIGTERM, SIGKILL after the grace period):
    the exit status and the seconds it took."""
    stop_at = time.monotonic()
    exit_status = server.stop(
        timeout_s=lifecycle.termination_grace_s,
        drain=drain,
        drain_deadline_s=lifecycle.drain_deadline_s,
    )
    return exit_status, time.monotonic() - stop_at


def stop_while_in_flight(
    server: LocalTritonServer,
    lifecycle: PodLifecycle,
    requests: Sequence[Future[None]],
    *,
    drain: bool,
) -> tuple[int, int | None, float]:
    """Stop `server` like the pod while `requests` run, then wait for every answer: the
    requests in flight at the stop, the exit status and the seconds the stop took."""
    in_flight = sum(not request.done() for request in requests)
    exit_status, stopped_s = stop_like_the_pod(server, lifecycle, drain=drain)
    for request in requests:
        request.result()
    return in_flight, exit_status, stopped_s


def run(
    model_repository: Path,
    lifecycle: PodLifecycle,
    *,
    requests_per_protocol: int = 24,
    texts_per_request: int = 4,
    drain: bool = True,
    protocols: tuple[str, ...] = ("http", "grpc"),
    work_dir: Path | None = None,
) -> ScenarioResult:
    server = start_like_the_pod(model_repository, lifecycle, work_dir)
    addresses = {"http": server.http_url, "grpc": server.grpc_url}
    targets = [(protocol, addresses[protocol]) for protocol in protocols]
    senders = [
        embedding_client(protocol, address, texts_per_request)
        for protocol, address in targets
        for _ in range(requests_per_protocol)
    ]
    record = LoadRecord()

    def send(index: int) -> None:
        sent_at = time.monotonic()
        try:
            status, message = senders[index](index)
        finally:
            # One request per client: an idle keep-alive connection would hold Triton in its
            # wait for HTTP connections after SIGTERM (up to --exit-timeout-secs).
            senders[index].close()
        record.add(sent_at, status, message)

    try:
        with ThreadPoolExecutor(max_workers=len(senders)) as pool:
            futures = [pool.submit(send, i) for i in range(len(senders))]
            wait(futures, timeout=FIRST_ANSWER_TIMEOUT_S, return_when=FIRST_COMPLETED)
            in_flight, exit_status, stopped_s = stop_while_in_flight(
                server, lifecycle, futures, drain=drain
            )
    finally:
        server.stop(timeout_s=0)

    failed = len(record.failures())
    exited_in_time = stopped_s < lifecycle.drain_deadline_s + lifecycle.exit_timeout_s
    passed = (failed == 0 and exited_in_time and in_flight > 0) if drain else failed > 0
    return ScenarioResult(
        scenario="stop with requests in flight" + ("" if drain else " without drain (control)"),
        load=f"{len(senders)} requests of {texts_per_request} texts at once over "
        + " and ".join(PROTOCOL_NAMES[p] for p in protocols),
        faults=("drain, then SIGTERM" if drain else "SIGTERM")
        + f" with {in_flight} requests in flight",
        requests_sent=record.sent,
        requests_failed=failed,
        recovery_s=None,
        passed=passed,
        notes=f"server exited {stopped_s:.1f} s after the stop began (status {exit_status})",
        details={
            "in_flight_at_stop": in_flight,
            "stopped_s": stopped_s,
            "exit_status": exit_status,
            "by_status": dict(record.by_status()),
            "failures": record.failure_summary(),
        },
    )
