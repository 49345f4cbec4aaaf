"""Stop a server that had clients and start it again at once on the same ports.

The stopped server's side of the connections it closed waits in TIME_WAIT for up to a minute;
only a listener makes a port busy (tritonserver binds with SO_REUSEADDR, and so does the check
in `LocalTritonServer.start`).
"""

from __future__ import annotations

import http.client
import socket
import time
from pathlib import Path

from inference_tools.local_server import LOOPBACK, LocalTritonServer, free_ports

from lab.reliability.load import LoadRecord, embedding_client
from lab.reliability.report import ScenarioResult

TIME_WAIT = "06"  # the state column of /proc/net/tcp


def time_wait_on(port: int) -> bool:
    """Whether a TCP connection whose local port is `port` is in TIME_WAIT."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            if int(fields[1].split(":")[1], 16) == port and fields[3] == TIME_WAIT:
                return True
    return False


def binds_without_reuse(port: int) -> bool:
    """What the check did before: a plain bind, which TIME_WAIT connections make fail."""
    with socket.socket() as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
    return True


def serve_clients(server: LocalTritonServer, record: LoadRecord) -> None:
    # HTTP clients that ask the server to close after each answer (its side of the connection
    # then waits in TIME_WAIT), and a gRPC client still connected at the stop.
    for _ in range(4):
        connection = http.client.HTTPConnection(LOOPBACK, server.http_port, timeout=30)
        sent_at = time.monotonic()
        connection.request("GET", "/v2/health/ready", headers={"Connection": "close"})
        status = connection.getresponse().status
        record.add(sent_at, "ok" if status == 200 else str(status))
        connection.close()
    send = embedding_client("grpc", server.grpc_url)
    record.add(time.monotonic(), *send(0))


def run(model_repository: Path, *, work_dir: Path | None = None) -> ScenarioResult:
    ports = dict(zip(("http_port", "grpc_port", "metrics_port"), free_ports(3), strict=True))
    record = LoadRecord()
    first = LocalTritonServer(model_repository, work_dir=work_dir, **ports)
    first.start()
    try:
        serve_clients(first, record)
    finally:
        first_exit = first.stop(drain=True)
    stopped_at = time.monotonic()
    time_wait_left = time_wait_on(ports["http_port"])
    plain_bind_refused = not binds_without_reuse(ports["http_port"])

    second = LocalTritonServer(model_repository, work_dir=work_dir, **ports)
    second.start()
    try:
        send = embedding_client("http", second.http_url)
        sent_at = time.monotonic()
        record.add(sent_at, *send(1))
        serving_s = time.monotonic() - stopped_at
        send.close()
    finally:
        second.stop(drain=True)

    failed = len(record.failures())
    return ScenarioResult(
        scenario="restart at once",
        load="5 requests before the stop (4 closed by the server, 1 gRPC), 1 after the start",
        faults="stop, then start at once on the same ports",
        requests_sent=record.sent,
        requests_failed=failed,
        recovery_s=serving_s,
        passed=failed == 0 and first_exit == 0 and time_wait_left and plain_bind_refused,
        notes=f"TIME_WAIT left on the HTTP port: {time_wait_left}; a plain bind "
        f"{'was refused' if plain_bind_refused else 'succeeded'}; served again "
        f"{serving_s:.1f} s after the stop",
        details={
            "time_wait_left": time_wait_left,
            "plain_bind_refused": plain_bind_refused,
            "first_exit": first_exit,
            "failures": record.failure_summary(),
            "http_port": ports["http_port"],
        },
    )
