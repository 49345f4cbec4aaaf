"""The gRPC retry policy, against a real gRPC server that answers ModelInfer as told."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent import futures

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from inference_tools import grpc_retry
from tritonclient.grpc import service_pb2
from tritonclient.utils import InferenceServerException


class ScriptedInferService:
    """Answers each ModelInfer call with the next status code of `script` (OK: a response)."""

    def __init__(self) -> None:
        self.script: list[grpc.StatusCode] = []
        self.calls = 0
        self._lock = threading.Lock()

    def model_infer(self, request, context):
        with self._lock:
            self.calls += 1
            code = self.script.pop(0) if self.script else grpc.StatusCode.OK
        if code != grpc.StatusCode.OK:
            context.abort(code, f"scripted {code.name}")
        return service_pb2.ModelInferResponse(model_name=request.model_name, id=request.id)


@pytest.fixture
def infer_service() -> Iterator[tuple[str, ScriptedInferService]]:
    service = ScriptedInferService()
    handler = grpc.method_handlers_generic_handler(
        "inference.GRPCInferenceService",
        {
            "ModelInfer": grpc.unary_unary_rpc_method_handler(
                service.model_infer,
                request_deserializer=service_pb2.ModelInferRequest.FromString,
                response_serializer=service_pb2.ModelInferResponse.SerializeToString,
            )
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", service
    finally:
        server.stop(grace=None)


def infer(address: str, retry: bool) -> None:
    args = grpc_retry.retrying_channel_args() if retry else None
    client = grpcclient.InferenceServerClient(address, channel_args=args)
    try:
        tensor = grpcclient.InferInput("X", [1, 1], "FP32")
        tensor.set_data_from_numpy(np.zeros((1, 1), dtype=np.float32))
        client.infer("model", [tensor])
    finally:
        client.close()


def test_unavailable_is_retried_until_an_answer(infer_service) -> None:
    address, service = infer_service
    service.script = [grpc.StatusCode.UNAVAILABLE] * 2
    infer(address, retry=True)
    assert service.calls == 3


def test_attempts_are_bounded(infer_service) -> None:
    address, service = infer_service
    service.script = [grpc.StatusCode.UNAVAILABLE] * 10
    with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
        infer(address, retry=True)
    assert service.calls == grpc_retry.MAX_ATTEMPTS


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL], ids=lambda c: c.name
)
def test_other_errors_are_not_retried(infer_service, code) -> None:
    address, service = infer_service
    service.script = [code]
    with pytest.raises(InferenceServerException, match=code.name):
        infer(address, retry=True)
    assert service.calls == 1


def test_without_the_policy_nothing_is_retried(infer_service) -> None:
    address, service = infer_service
    service.script = [grpc.StatusCode.UNAVAILABLE]
    with pytest.raises(InferenceServerException, match="UNAVAILABLE"):
        infer(address, retry=False)
    assert service.calls == 1


def test_channel_args_keep_tritonclients_defaults_and_name_the_infer_method() -> None:
    args = dict(grpc_retry.retrying_channel_args())
    assert args["grpc.max_receive_message_length"] == 2**31 - 1
    config = json.loads(args["grpc.service_config"])
    (method,) = config["methodConfig"]
    assert method["name"] == [{"service": "inference.GRPCInferenceService", "method": "ModelInfer"}]
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]
