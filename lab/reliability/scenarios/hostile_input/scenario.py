"""Hostile requests while clients are served: the edge refuses them and no replica is lost.

One replica, started with the Deployment's Triton flags behind the pod's HTTP guard, behind the
nginx edge (the routes and limits of lab.reliability.edge), serves valid clients over HTTP and
gRPC while a battery of hostile requests arrives: form-encoded bodies of 5 MB (which crash
Triton 2.51) to a health and an inference path, a body over the cap, 500 KB of nested JSON
(which crashes it too) and a malformed binary-tensor header (refused by the guard),
composing-model and administrative paths, and over gRPC (no route can hide a model named inside
a gRPC message) an encoder sequence far past its limit, token ids past the vocabulary and an
all-zero mask, a streaming call; idle connections are held open throughout.

With `edge=False` the form-encoded body goes to Triton's own port, past the edge and the guard:
the control, which loses the replica.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections import Counter
from pathlib import Path

import grpc
import numpy as np
from tritonclient.grpc import service_pb2, service_pb2_grpc

from lab.reliability import edge
from lab.reliability.load import ClosedLoopLoad
from lab.reliability.local_replicas import start_replica
from lab.reliability.nginx import NginxProxy
from lab.reliability.pod_lifecycle import PodLifecycle
from lab.reliability.report import ScenarioResult

MODEL = edge.PUBLIC_MODELS[0]
FORM_BODY = b"a" * 5_000_000
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}
IDLE_CONNECTIONS = 200


def post(address: str, path: str, body: bytes, headers: dict[str, str]) -> str:
    """The HTTP status as text, or the name of the error when no answer came."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.request("POST", path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return str(response.status)
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    finally:
        connection.close()


def _encoder_request(ids: np.ndarray, mask: np.ndarray) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="minilm")
    for name, value in (("input_ids", ids), ("attention_mask", mask)):
        request.inputs.add(name=name, datatype="INT64", shape=list(value.shape))
        request.raw_input_contents.append(value.astype(np.int64).tobytes())
    return request


def _long_sequence_request(length: int) -> service_pb2.ModelInferRequest:
    ids = np.full((1, length), 1000, dtype=np.int64)
    return _encoder_request(ids, ids)


def _out_of_vocabulary_request() -> service_pb2.ModelInferRequest:
    """16 tokens, one id far past the vocabulary: it used to fail every batch it joined."""
    ids = np.array([[101, 1_000_000, 102] + [0] * 13])
    return _encoder_request(ids, (ids != 0).astype(np.int64))


def _zero_mask_request() -> service_pb2.ModelInferRequest:
    ids = np.array([[101, 2000, 102] + [0] * 13])
    return _encoder_request(ids, np.zeros_like(ids))


GRPC_HOSTILE = {
    "long-sequence": lambda: _long_sequence_request(100_000 // 8),
    "out-of-vocabulary": _out_of_vocabulary_request,
    "zero-mask": _zero_mask_request,
}


def _grpc_call(stub: service_pb2_grpc.GRPCInferenceServiceStub, kind: str) -> str:
    try:
        if kind == "stream":
            list(stub.ModelStreamInfer(iter([service_pb2.ModelInferRequest()]), timeout=30))
        else:
            stub.ModelInfer(GRPC_HOSTILE[kind](), timeout=60)
        return "OK"
    except grpc.RpcError as error:
        return error.code().name


# 250,000 nested arrays (500 KB, under every cap): tritonserver 2.51 died of it with SIGSEGV.
NESTED_JSON_BODY = b'{"inputs":' + b"[" * 250_000 + b"]" * 250_000 + b"}"
BINARY_HEADER_ABC = {
    **{"Content-Type": "application/json"},
    "Inference-Header-Content-Length": "abc",
}


def hostile_battery(http_address: str, grpc_address: str) -> Counter[str]:
    """One round of hostile requests; the answers counted by status."""
    answers: Counter[str] = Counter()
    for path in ("/v2/health/live", edge.model_infer_path(MODEL)):
        answers[post(http_address, path, FORM_BODY, FORM)] += 1
    oversized = b" " * (edge.edge_limits().max_body_bytes + 1)
    answers[post(http_address, edge.model_infer_path(MODEL), oversized, JSON)] += 1
    answers[post(http_address, edge.model_infer_path(MODEL), NESTED_JSON_BODY, JSON)] += 1
    valid_body = b'{"inputs":[{"name":"TEXT","shape":[1,1],"datatype":"BYTES","data":["hi"]}]}'
    answers[post(http_address, edge.model_infer_path(MODEL), valid_body, BINARY_HEADER_ABC)] += 1
    for path in ("/v2/models/minilm/infer", f"/v2/models/{MODEL}/config", "/v2/repository/index"):
        answers[post(http_address, path, b"{}", JSON)] += 1
    with grpc.insecure_channel(grpc_address) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        for kind in (*GRPC_HOSTILE, "stream"):
            answers[_grpc_call(stub, kind)] += 1
    return answers


# What the edge (or, for the long sequence, the encoder) answers each hostile request with.
# 400: the pod's HTTP guard (nested JSON, a malformed binary header).
REFUSALS = {"400", "415", "413", "404", "INVALID_ARGUMENT", "UNIMPLEMENTED"}


def run(
    model_repository: Path,
    lifecycle: PodLifecycle,
    *,
    rounds: int = 5,
    phase_s: float = 30.0,
    edge_in_front: bool = True,
    work_dir: Path | None = None,
) -> ScenarioResult:
    replica = start_replica("hostile", model_repository, lifecycle, work_dir=work_dir)
    server = replica.server
    proxy = NginxProxy([replica.endpoint]).start()
    idle: list[socket.socket] = []
    answers: Counter[str] = Counter()
    try:
        host, port = proxy.http_url.rsplit(":", 1)
        idle = [socket.create_connection((host, int(port))) for _ in range(IDLE_CONNECTIONS)]
        targets = {"http": proxy.http_url, "grpc": proxy.grpc_url}
        with ClosedLoopLoad(targets, workers=2, think_time_s=0.05) as load:
            if edge_in_front:
                # Rounds spread over the phase, so valid clients are served throughout.
                phase_end = time.monotonic() + phase_s
                for remaining in range(rounds, 0, -1):
                    answers += hostile_battery(proxy.http_url, proxy.grpc_url)
                    time.sleep(max(0.0, (phase_end - time.monotonic()) / remaining))
            else:
                # Triton's own port: past the edge and the pod's HTTP guard.
                answers[post(server.triton_http_url, "/v2/health/live", FORM_BODY, FORM)] += 1
                time.sleep(5.0)  # long enough for every client to notice
        record = load.record
        assert server.process is not None
        replicas_lost = int(server.process.poll() is not None)
    finally:
        for connection in idle:
            connection.close()
        proxy.stop()
        server.stop()
    hostile_sent = sum(answers.values())
    unexpected = {status: n for status, n in answers.items() if status not in REFUSALS}
    valid_failed = len(record.failures())
    answered = ", ".join(f"{status} x{n}" for status, n in sorted(answers.items()))
    if edge_in_front:
        passed = replicas_lost == 0 and not unexpected and valid_failed == 0
        scenario, faults = (
            "hostile input",
            (
                f"{hostile_sent} hostile requests ({rounds} rounds: 5 MB form bodies, a body over "
                "the cap, 500 KB of nested JSON, a malformed binary header, composing-model and "
                f"admin paths; over gRPC a {100_000 // 8}-token sequence, out-of-vocabulary ids, "
                f"a zero mask and a stream) + {IDLE_CONNECTIONS} idle connections"
            ),
        )
        notes = f"replicas lost: {replicas_lost}; hostile requests answered {answered}"
    else:
        passed = replicas_lost == 1
        scenario = "hostile input without the edge (control)"
        faults = "one 5 MB form-encoded body straight to Triton's own port"
        notes = (
            f"replicas lost: {replicas_lost} (tritonserver exit status "
            f"{server.process.returncode}): the edge is what keeps it alive"
        )
    return ScenarioResult(
        scenario=scenario,
        load="2 HTTP + 2 gRPC clients via nginx, 1 replica",
        faults=faults,
        requests_sent=hostile_sent + record.sent,
        requests_failed=valid_failed,
        recovery_s=None,
        passed=passed,
        notes=notes,
        details={
            "replicas_lost": replicas_lost,
            "answers": dict(answers),
            "valid_sent": record.sent,
            "valid_failed": valid_failed,
            "failure_summary": record.failure_summary(),
        },
    )
