"""Malformed requests at the protocol level: each gets a client error and the server stays up.

These bypass tritonclient (which would refuse to build most of them) and write the bytes
ourselves: binary tensor extensions with wrong sizes, absurd shapes, invalid UTF-8 and deeply
nested JSON over HTTP; inconsistent raw tensor contents and undecodable messages over gRPC.
"""

from __future__ import annotations

import http.client
import json
import struct

import grpc
import pytest
import tritonclient.grpc.service_pb2 as service_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.clients import MODEL, embed

pytestmark = pytest.mark.server

INFER_PATH = f"/v2/models/{MODEL}/infer"
GRPC_INFER = "/inference.GRPCInferenceService/ModelInfer"


def bytes_element(text: bytes) -> bytes:
    """A BYTES tensor element in Triton's binary layout: 4-byte little-endian length, then data."""
    return struct.pack("<I", len(text)) + text


def binary_request(header: dict, binary: bytes) -> tuple[bytes, dict[str, str]]:
    """The binary tensor extension: JSON header, then raw tensor bytes, its length announced."""
    head = json.dumps(header).encode()
    return head + binary, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(head)),
    }


def text_input(shape: list[int], **parameters) -> dict:
    tensor = {"name": "TEXT", "shape": shape, "datatype": "BYTES"}
    if parameters:
        tensor["parameters"] = parameters
    return {"inputs": [tensor]}


ONE_TEXT = bytes_element(b"hello")

HTTP_CASES: dict[str, tuple[bytes, dict[str, str]]] = {
    "binary tensor shorter than binary_data_size": binary_request(
        text_input([1, 1], binary_data_size=len(ONE_TEXT) + 100), ONE_TEXT
    ),
    "binary_data_size smaller than the bytes sent": binary_request(
        text_input([1, 1], binary_data_size=2), ONE_TEXT
    ),
    "element length prefix past the end": binary_request(
        text_input([1, 1], binary_data_size=9), struct.pack("<I", 1_000_000) + b"hello"
    ),
    "header length past the body": (
        b'{"inputs": []}',
        {"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": "999"},
    ),
    "huge declared shape": (json.dumps(text_input([1_000_000_000, 1]) | {}).encode(), {}),
    "negative shape": (json.dumps(text_input([-1, 1])).encode(), {}),
    "data count differs from shape": (
        json.dumps(
            {"inputs": [{"name": "TEXT", "shape": [4, 1], "datatype": "BYTES", "data": ["a"]}]}
        ).encode(),
        {},
    ),
    "invalid UTF-8 inside the JSON": (
        b'{"inputs":[{"name":"TEXT","shape":[1,1],"datatype":"BYTES","data":["\xff\xfe"]}]}',
        {},
    ),
    "deeply nested JSON": (b'{"inputs":' + b"[" * 100_000 + b"]" * 100_000 + b"}", {}),
    "not JSON": (b"\x00\x01garbage", {}),
    "JSON of the wrong kind": (b"[1, 2, 3]", {}),
    "empty body": (b"", {}),
}


def post(
    address: str, body: bytes, headers: dict[str, str], path: str = INFER_PATH
) -> tuple[int, str]:
    host, port = address.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def assert_still_serving(server, connect) -> None:
    client = connect("http")
    assert client.is_server_ready()
    (vector,) = embed(client, "http", ["still serving after a malformed request"])
    assert vector.shape == (384,)


# Triton 2.51's own HTTP frontend answers these with a server error although the client is at
# fault (a body that is no JSON object), or runs an inference for an empty body; the HTTP guard
# in front of it answers 400. Pinned on Triton's own port so that an upgrade that fixes them
# shows up; docs/reliability.md lists them.
KNOWN_TRITON_DEVIATIONS = {
    "not JSON": (500, "failed to parse the request JSON buffer"),
    "JSON of the wrong kind": (500, "Unable to parse 'inputs'"),
    "empty body": (200, "EMBEDDING"),
}


@pytest.mark.parametrize("case", sorted(HTTP_CASES))
def test_malformed_http_request_gets_a_4xx(triton_server, connect, case):
    body, headers = HTTP_CASES[case]
    status, text = post(triton_server.http_url, body, headers)
    assert 400 <= status < 500, (case, status, text)
    assert "error" in text, text
    assert_still_serving(triton_server, connect)


@pytest.mark.parametrize("case", sorted(KNOWN_TRITON_DEVIATIONS))
def test_triton_alone_still_mislabels_what_the_guard_refuses(triton_server, case):
    body, headers = HTTP_CASES[case]
    status, text = post(triton_server.triton_http_url, body, headers)
    expected_status, fragment = KNOWN_TRITON_DEVIATIONS[case]
    assert (status, fragment in text) == (expected_status, True), (case, status, text[:300])


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.one_of(
        st.binary(max_size=512),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(
                        [
                            "inputs",
                            "name",
                            "shape",
                            "datatype",
                            "data",
                            "parameters",
                            "outputs",
                            "id",
                        ]
                    ),
                    children,
                    max_size=4,
                )
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
    )
)
def test_random_http_bodies_are_refused_with_a_handled_error(triton_server, body):
    """Never accepted, never a dropped connection or a crash, always a client error: Triton 2.51
    alone classifies JSON it cannot read as 500 (KNOWN_TRITON_DEVIATIONS), the guard as 400."""
    status, text = post(triton_server.http_url, body, {})
    assert 400 <= status < 500, (body[:200], status, text)
    assert set(json.loads(text)) == {"error"}, (body[:200], status, text)


def test_server_is_healthy_after_the_random_bodies(triton_server, connect):
    assert_still_serving(triton_server, connect)


def grpc_infer(server, request: bytes) -> grpc.RpcError | None:
    """Send raw bytes as a ModelInfer request; None when it succeeded."""
    with grpc.insecure_channel(server.grpc_url) as channel:
        call = channel.unary_unary(GRPC_INFER, request_serializer=None, response_deserializer=None)
        try:
            call(request, timeout=60)
        except grpc.RpcError as error:
            return error
    return None


def grpc_text_request(shape: list[int], raw: bytes) -> bytes:
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=shape)
    del tensor
    request.raw_input_contents.append(raw)
    return request.SerializeToString()


GRPC_CASES = {
    "raw contents shorter than the shape": grpc_text_request([2, 1], ONE_TEXT),
    "length prefix past the end": grpc_text_request([1, 1], struct.pack("<I", 999) + b"abc"),
    "huge declared shape": grpc_text_request([2**31, 1], ONE_TEXT),
    "invalid UTF-8 text": grpc_text_request([1, 1], bytes_element(b"\xc3\x28")),
    "bytes that are no protobuf message": b"\xff\xff\xff\xff\x0f garbage",
}


@pytest.mark.parametrize("case", sorted(GRPC_CASES))
def test_malformed_grpc_request_is_refused(triton_server, connect, case):
    error = grpc_infer(triton_server, GRPC_CASES[case])
    assert error is not None, case
    assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL), (
        case,
        error.code(),
        error.details(),
    )
    assert_still_serving(triton_server, connect)
