"""The HTTP guard in front of a real Triton: what crashed or fooled 2.51 is refused, and the
server is still there to serve the next request.

The session's server is a LocalTritonServer, whose `http_url` is the guard (as the pod's port
8000 is); `triton_http_url` is Triton's own, for the behaviour the guard exists to hide.
"""

from __future__ import annotations

import http.client
import json

import pytest

from tests.clients import MODEL, embed

pytestmark = pytest.mark.server

INFER = f"/v2/models/{MODEL}/infer"
JSON = {"Content-Type": "application/json"}


def post(address: str, body: bytes, headers: dict[str, str] = JSON, path: str = INFER):
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read() or b"null")
    finally:
        connection.close()


def text_tensor(**fields) -> dict:
    return {"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": ["hello"], **fields}


@pytest.mark.parametrize("depth", [250_000, 1_000_000, 4_000_000])
def test_json_nested_deep_enough_to_kill_triton_is_refused(triton_server, connect, depth):
    # 250,000 levels (500 KB) took tritonserver 2.51 down with SIGSEGV, stubs and all.
    body = b'{"inputs":' + b"[" * depth + b"]" * depth + b"}"
    status, answer = post(triton_server.http_url, body)
    assert status == 400 and "nested" in answer["error"]
    assert triton_server.process.poll() is None
    assert embed(connect("http"), "http", ["still serving"]).shape == (1, 384)


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (json.dumps({"inputs": [text_tensor()]}).encode("utf-16"), JSON),
        (json.dumps({"inputs": [text_tensor()]}).encode() + b"}}", JSON),
        (json.dumps({"inputs": [text_tensor(shape=[-1, 1])]}).encode(), JSON),
        (json.dumps({"inputs": [text_tensor(data=[7])]}).encode(), JSON),
        (json.dumps({"inputs": [text_tensor()], "parameters": {"priority": -1}}).encode(), JSON),
        (
            json.dumps({"inputs": [text_tensor()]}).encode(),
            {**JSON, "Inference-Header-Content-Length": "abc"},
        ),
        (
            json.dumps({"inputs": [text_tensor()]}).encode(),
            {**JSON, "Inference-Header-Content-Length": "0"},
        ),
    ],
    ids=["utf-16", "trailing", "negative-shape", "number-as-bytes", "priority", "hdr-abc", "hdr-0"],
)
def test_client_errors_triton_answers_500_or_misreads_get_400(triton_server, body, headers):
    status, answer = post(triton_server.http_url, body, headers)
    assert status == 400, answer
    assert answer["error"]


# Triton 2.51 keeps the batch size in 32 bits: 2**32 + 2 rows wrap to a batch of 2 and pass the
# max_batch_size check. Fixed in Triton's core after 2.51 ("Input batch size overflow
# vulnerability", core #434). The guard refuses it; Triton's own port still shows the wrap, so
# that an upgrade shows here.
def test_http_batch_past_32_bits_is_refused_and_triton_alone_still_wraps(triton_server):
    tensor = text_tensor(shape=[2**32 + 2, 1], data=["a", "b"])
    body = json.dumps({"inputs": [tensor]}).encode()
    status, answer = post(triton_server.http_url, body)
    assert status == 400 and "larger than" in answer["error"]
    status, answer = post(triton_server.triton_http_url, body)
    assert status == 200
    assert answer["outputs"][0]["shape"] == [2, 384]


def test_admin_and_health_paths_pass_the_guard_unchanged(triton_server):
    host, port = triton_server.http_url.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    connection.request("GET", "/v2/health/ready")
    assert connection.getresponse().status == 200
    connection.close()
    status, index = post(triton_server.http_url, b"{}", path="/v2/repository/index")
    assert status == 200 and {entry["name"] for entry in index} >= {MODEL, "minilm"}
