"""A server stopped after serving clients can be started again at once on the same ports.

The stopped server's connections linger in TIME_WAIT for up to a minute; only a listener makes
a port busy, as for tritonserver itself (it binds with SO_REUSEADDR).
"""

from __future__ import annotations

import http.client
import socket

import pytest
from inference_tools.local_server import LocalTritonServer, free_port, port_in_use

from tests.server.helpers import client_for, embed

pytestmark = pytest.mark.server


def time_wait_on(port: int) -> bool:
    """Whether a TCP connection with local port `port` is in TIME_WAIT (/proc/net/tcp, state 06)."""
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            local, state = line.split()[1], line.split()[3]
            if int(local.split(":")[1], 16) == port and state == "06":
                return True
    return False


def binds_without_reuse(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def serve_clients(server: LocalTritonServer) -> None:
    # HTTP clients that ask the server to close after each answer (the server's side of the
    # connection then waits in TIME_WAIT), and a gRPC client that is connected at the stop.
    for _ in range(4):
        connection = http.client.HTTPConnection("127.0.0.1", server.http_port, timeout=30)
        connection.request("GET", "/v2/health/ready", headers={"Connection": "close"})
        assert connection.getresponse().status == 200
        connection.close()
    grpc_client = client_for(server, "grpc")
    assert embed(grpc_client, "grpc", ["served before the restart"]).shape == (1, 384)


def test_a_stopped_server_starts_again_at_once_on_its_ports(model_repository, tmp_path):
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    first = LocalTritonServer(model_repository, work_dir=tmp_path, **ports)
    first.start()
    try:
        serve_clients(first)
    finally:
        assert first.stop(drain=True) == 0
    # The situation that made the old check refuse: the port is free of listeners, yet a plain
    # bind fails because of the connections the server just closed.
    assert time_wait_on(ports["http_port"]), "no TIME_WAIT left: the test proves nothing"
    assert not binds_without_reuse(ports["http_port"])
    assert not port_in_use("127.0.0.1", ports["http_port"])

    second = LocalTritonServer(model_repository, work_dir=tmp_path, **ports)
    second.start()
    try:
        client = client_for(second, "http")
        try:
            assert embed(client, "http", ["served after the restart"]).shape == (1, 384)
        finally:
            client.close()
        # And a port that something listens on still counts as busy.
        assert port_in_use("127.0.0.1", ports["http_port"])
    finally:
        second.stop(drain=True)
