"""triton-http-guard: what it refuses, and that it forwards everything else unchanged.

The bodies are the ones a hostile client sent to Triton 2.51 (docs/security.md); the proxy's
framing is checked against a plain HTTP server standing in for Triton. The guard in front of a
real Triton is tested in tests/serving/test_http_guard_with_triton.py.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler

import pytest
from inference_tools.local_server import free_ports, port_in_use
from inference_tools.subprocesses import wait_until_ready
from lab.reliability import edge
from pod_hooks.http_guard import DEFAULT_MAX_BODY_BYTES, Refusal, check_body, json_depth

from tests.fakes.http_server import serving

INFER = "/v2/models/text_embedding/infer"
DEPTH = 32


def text_request(**tensor_fields) -> dict:
    tensor = {"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": ["hello"]}
    return {"inputs": [{**tensor, **tensor_fields}]}


def refused(body: bytes, path: str = INFER, header_length: str | None = None) -> str:
    with pytest.raises(Refusal) as refusal:
        check_body(path, body, header_length, DEPTH)
    assert refusal.value.status == 400
    return refusal.value.message


def test_the_body_cap_is_the_edges() -> None:
    assert edge.edge_limits().max_body_bytes == DEFAULT_MAX_BODY_BYTES


def test_nested_json_is_refused_at_any_depth_past_the_limit() -> None:
    for depth in (DEPTH + 1, 1000, 100_000, 250_000):
        body = b'{"inputs":' + b"[" * depth + b"]" * depth + b"}"
        assert "nested" in refused(body)
    # Non-inference paths parse JSON too (the repository API): the same bound holds there.
    assert "nested" in refused(b"[" * 250_000, path="/v2/repository/index")


def test_the_depth_every_valid_request_needs_passes() -> None:
    check_body(INFER, json.dumps(text_request()).encode(), None, DEPTH)
    nested = text_request(shape=[1, 1], data=[["hello"]])
    check_body(INFER, json.dumps(nested).encode(), None, DEPTH)
    assert json_depth({"a": [[[1]]]}) == 4


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (json.dumps(text_request()).encode("utf-16"), "not UTF-8"),
        (json.dumps(text_request()).encode() + b" trailing", "not valid JSON"),
        (b'{"inputs": [', "not valid JSON"),
        (json.dumps(text_request(shape=[-1, 1])).encode(), "non-negative"),
        (json.dumps(text_request(shape=[2**32 + 2, 1], data=["a", "b"])).encode(), "larger than"),
        (json.dumps(text_request(data=[1])).encode(), "must be strings"),
        (json.dumps(text_request(data=[{"a": 1}])).encode(), "must be strings"),
        (json.dumps({**text_request(), "parameters": {"priority": -1}}).encode(), "priority"),
        (
            json.dumps(
                {**text_request(), "outputs": [{"name": "E", "parameters": {"classification": -3}}]}
            ).encode(),
            "classification",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[NaN,1]}]}',
            "not JSON",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1e39,1]}]}',
            "beyond the range of FP32",
        ),
        (
            b'{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[true,"1"]}]}',
            "must be numbers",
        ),
        (b'{"inputs":[{"name":"x","shape":[1],"datatype":"INT64","data":[1.5]}]}', "integers"),
        (b'{"inputs":[{"name":"x","shape":[1],"datatype":"BOOL","data":[1]}]}', "true or false"),
        (b'{"inputs": {"name": "x"}}', "array of objects"),
        (b"[1, 2]", "JSON object"),
    ],
)
def test_requests_triton_mishandles_are_refused_with_a_reason(body: bytes, says: str) -> None:
    assert says in refused(body)


def test_binary_tensor_headers_must_be_numbers_that_fit_the_body() -> None:
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "x",
                    "shape": [1, 2],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": 8},
                }
            ]
        }
    ).encode()
    body = header + b"\0" * 8
    check_body(INFER, body, str(len(header)), DEPTH)
    for value in ("abc", "0", "-5", str(len(body) + 1)):
        assert "Inference-Header-Content-Length" in refused(body, header_length=value)
    assert "binary data" in refused(header + b"\0" * 12, header_length=str(len(header)))
    negative = header.replace(b'"binary_data_size": 8', b'"binary_data_size": -8')
    assert "binary_data_size" in refused(negative + b"\0" * 8, header_length=str(len(negative)))


# ------------------------------------------------------------------------------------------
# The proxy, against a plain HTTP server in Triton's place


class EchoHandler(BaseHTTPRequestHandler):
    """Answers with what it received: method, path, body length and a few headers."""

    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        reply = json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "length": len(body),
                "admin": self.headers.get("x-triton-admin-key"),
                "chunked": self.headers.get("Transfer-Encoding"),
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_GET = do_POST = _answer

    def log_message(self, *args) -> None:
        pass


@contextmanager
def running_guard(upstream: str, *options: str) -> Iterator[tuple[str, int]]:
    """The guard on a free loopback port in front of `upstream` (HOST:PORT), stopped after."""
    (port,) = free_ports(1)
    command = [sys.executable, "-m", "pod_hooks.http_guard", f"--listen=127.0.0.1:{port}"]
    process = subprocess.Popen([*command, f"--upstream={upstream}", *options])
    try:
        why = wait_until_ready(lambda: port_in_use("127.0.0.1", port), process, timeout_s=30)
        assert why is None, f"the guard did not start: {why}"
        yield "127.0.0.1", port
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0


@pytest.fixture(scope="module")
def guard() -> Iterator[tuple[str, int]]:
    with serving(EchoHandler) as upstream:
        address = upstream.removeprefix("http://")
        with running_guard(address, "--max-body-bytes=1000000") as guard_address:
            yield guard_address


def test_requests_pass_unchanged_on_one_kept_alive_connection(guard) -> None:
    connection = http.client.HTTPConnection(*guard, timeout=10)
    body = json.dumps(text_request()).encode()
    for _ in range(3):
        connection.request("POST", INFER, body, {"x-triton-admin-key": "k"})
        response = connection.getresponse()
        echoed = json.loads(response.read())
        assert response.status == 200
        assert echoed == {
            "method": "POST",
            "path": INFER,
            "length": len(body),
            "admin": "k",
            "chunked": None,
        }
    connection.request("GET", "/v2/health/ready")
    assert json.loads(connection.getresponse().read())["method"] == "GET"
    connection.close()


def test_a_chunked_body_is_checked_whole_and_forwarded_with_its_length(guard) -> None:
    body = json.dumps(text_request()).encode()
    connection = http.client.HTTPConnection(*guard, timeout=10)
    connection.request("POST", INFER, iter([body[:10], body[10:]]), encode_chunked=True)
    echoed = json.loads(connection.getresponse().read())
    assert echoed["length"] == len(body) and echoed["chunked"] is None
    deep = b"[" * 5000
    connection = http.client.HTTPConnection(*guard, timeout=10)
    connection.request("POST", INFER, iter([deep[:100], deep[100:]]), encode_chunked=True)
    response = connection.getresponse()
    assert response.status == 400 and "nested" in json.loads(response.read())["error"]


def test_expect_continue_is_answered_and_oversized_bodies_get_413(guard) -> None:
    with socket.create_connection(guard, timeout=10) as raw:
        body = json.dumps(text_request()).encode()
        raw.sendall(
            f"POST {INFER} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            "Expect: 100-continue\r\n\r\n".encode()
        )
        assert raw.recv(1024).startswith(b"HTTP/1.1 100 Continue")
        raw.sendall(body)
        assert b" 200 " in raw.recv(4096).split(b"\r\n")[0]
    connection = http.client.HTTPConnection(*guard, timeout=10)
    connection.request("POST", INFER, b" " * 1_000_001)
    assert connection.getresponse().status == 413


@pytest.mark.parametrize(
    "head",
    [
        "Content-Length: 5\r\nTransfer-Encoding: chunked",
        "Content-Length: 5\r\nContent-Length: 6",
        "Content-Length: five",
    ],
)
def test_ambiguous_framing_is_refused(guard, head: str) -> None:
    with socket.create_connection(guard, timeout=10) as raw:
        raw.sendall(f"POST {INFER} HTTP/1.1\r\nHost: x\r\n{head}\r\n\r\nhello".encode())
        assert raw.recv(4096).startswith(b"HTTP/1.1 400 ")


def test_a_missing_upstream_is_a_502_that_says_so() -> None:
    (dead,) = free_ports(1)  # nothing listens there
    with running_guard(f"127.0.0.1:{dead}") as address:
        connection = http.client.HTTPConnection(*address, timeout=10)
        connection.request("GET", "/v2/health/ready")
        response = connection.getresponse()
        assert response.status == 502
        assert "does not answer" in json.loads(response.read())["error"]
