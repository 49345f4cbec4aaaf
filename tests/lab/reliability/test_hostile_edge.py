"""Hostile requests against the edge: the nginx stand-in refuses them before Triton sees them.

The nginx here carries the same routes and limits as the shipped Ingress and Gateway
(lab.reliability.edge; tests/kubernetes/test_edge_limits.py checks the manifests against it).
The last test shows why the edge matters: the same form-encoded body sent to Triton 2.51
directly kills the process. It is pinned so that an upgrade that fixes the crash shows.

Not in tests/e2e: `make cluster` runs no Gateway or Ingress controller (docs/cluster.md), so the
edge is this nginx, rendered from the same limits as the manifests.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from inference_tools.local_server import LocalTritonServer
from lab.reliability import edge
from lab.reliability.nginx import Endpoint, NginxProxy
from lab.reliability.scenarios.hostile_input.scenario import FORM, FORM_BODY, JSON, post
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.clients import MODEL, embed

pytestmark = pytest.mark.server

IDLE_CONNECTIONS = 300


@pytest.fixture(scope="module")
def proxy(triton_server, nginx, tmp_path_factory) -> NginxProxy:
    endpoint = Endpoint(http=triton_server.http_url, grpc=triton_server.grpc_url)
    proxy = NginxProxy([endpoint], prefix=tmp_path_factory.mktemp("edge-nginx")).start()
    yield proxy
    proxy.stop()


def json_infer_body(texts: list[str]) -> bytes:
    tensor = {"name": "TEXT", "shape": [len(texts), 1], "datatype": "BYTES", "data": texts}
    return json.dumps({"inputs": [tensor]}).encode()


def assert_serving(server: LocalTritonServer) -> None:
    assert server.process is not None and server.process.poll() is None, "tritonserver died"
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        assert embed(client, "http", ["still serving"]).shape == (1, 384)
    finally:
        client.close()


@pytest.mark.parametrize("path", ["/v2/health/live", edge.model_infer_path(MODEL)])
def test_form_encoded_body_is_refused_before_triton(proxy, triton_server, path):
    assert post(proxy.http_url, path, FORM_BODY, FORM) == "415"
    assert post(proxy.http_url, path, b"a=b", {"Content-Type": "multipart/form-data"}) == "415"
    assert_serving(triton_server)


@pytest.mark.parametrize("path", ["/v2/health/live", edge.model_infer_path(MODEL)])
def test_the_body_without_its_form_content_type_is_harmless(triton_server, path):
    """What the HTTPRoute forwards: the Content-Type header dropped, the body unchanged."""
    # The pod's HTTP guard refuses a body that is not JSON; Triton's own port, past it, answers
    # 405 to a POST on health and 500 to a body that is not JSON (2.51), and survives.
    assert post(triton_server.http_url, path, FORM_BODY, {}) == "400"
    answer = post(triton_server.triton_http_url, path, FORM_BODY, {})
    assert answer in ("405", "500")
    assert_serving(triton_server)


def test_body_over_the_cap_is_refused(proxy, triton_server):
    oversized = b" " * (edge.edge_limits().max_body_bytes + 1)
    path = edge.model_infer_path(MODEL)
    assert post(proxy.http_url, path, oversized, JSON) == "413"
    assert_serving(triton_server)


def test_json_with_and_without_content_type_and_binary_tensors_pass(proxy):
    path = edge.model_infer_path(MODEL)
    body = json_infer_body(["a cat", "a dog"])
    for headers in ({}, {"Content-Type": "application/json; charset=utf-8"}):
        assert post(proxy.http_url, path, body, headers) == "200"
    client = httpclient.InferenceServerClient(proxy.http_url)
    try:
        texts = np.array([[b"binary tensor"]], dtype=object)
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(texts, binary_data=True)
        output = httpclient.InferRequestedOutput("EMBEDDING", binary_data=True)
        result = client.infer(MODEL, [tensor], outputs=[output])
        assert result.as_numpy("EMBEDDING").shape == (1, 384)
    finally:
        client.close()


@pytest.mark.parametrize(
    "path",
    [
        "/v2/models/minilm/infer",  # a composing model
        "/v2/models/tokenizer/infer",
        f"/v2/models/{MODEL}/config",  # administrative
        f"/v2/models/{MODEL}/stats",
        "/v2/repository/index",
        "/v2/trace/setting",
        "/v2/systemsharedmemory/status",
        f"/v2/models/{MODEL}/versions/1/infer",
    ],
)
def test_only_public_paths_are_routed(proxy, path):
    assert post(proxy.http_url, path, b"{}", JSON) == "404"


def test_grpc_routes_only_the_public_methods(proxy):
    client = grpcclient.InferenceServerClient(proxy.grpc_url)
    try:
        assert client.is_server_ready()
        assert embed(client, "grpc", ["through the edge"]).shape == (1, 384)
    finally:
        client.close()
    with grpc.insecure_channel(proxy.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.ModelConfig(service_pb2.ModelConfigRequest(name=MODEL), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        with pytest.raises(grpc.RpcError) as refused:
            list(stub.ModelStreamInfer(iter([service_pb2.ModelInferRequest()]), timeout=10))
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_triton_direct_still_crashes_on_a_form_encoded_body(model_repository):
    """Triton 2.51's own HTTP server dies on this request: the reason the edge refuses it.

    If this fails because the server survived, Triton fixed the crash: update docs/security.md.
    """
    server = LocalTritonServer(model_repository)
    server.start(timeout_s=300)
    try:
        # Through the pod's HTTP guard the body is refused (not JSON); past it, Triton dies.
        assert post(server.http_url, "/v2/health/live", FORM_BODY, FORM) == "400"
        answer = post(server.triton_http_url, "/v2/health/live", FORM_BODY, FORM)
        assert not answer.isdigit(), f"Triton answered {answer} instead of crashing"
        assert server.process is not None
        assert server.process.wait(timeout=30) == -signal.SIGSEGV
    finally:
        server.stop()
    # Its Python-backend stubs, left running by the crash, went with the stop.
    assert live_members_of_group(server.process.pid) == []


def live_members_of_group(group: int) -> list[int]:
    """Processes of a process group that are not zombies, from /proc (waited for up to 10 s)."""
    deadline = time.monotonic() + 10
    while True:
        members = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                members.append(int(stat.parent.name))
        if not members or time.monotonic() > deadline:
            return members
        time.sleep(0.2)


def open_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_idle_connections_stay_at_the_edge_and_are_closed(proxy, triton_server):
    """Idle connections that exhaust Triton's descriptors when direct never reach it here."""
    assert triton_server.process is not None
    before = open_descriptors(triton_server.process.pid)
    host, port = proxy.http_url.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(IDLE_CONNECTIONS)]
    try:
        assert_serving(triton_server)
        # nginx opens an upstream connection per request, none for a connection that sends
        # nothing: Triton's descriptors do not follow the idle clients.
        assert open_descriptors(triton_server.process.pid) < before + IDLE_CONNECTIONS // 10
        for connection in idle:
            # Closed by nginx once client_header_timeout passes without a request.
            connection.settimeout(edge.edge_limits().client_body_timeout_seconds * 6)
            assert connection.recv(1) == b""
    finally:
        for connection in idle:
            connection.close()
