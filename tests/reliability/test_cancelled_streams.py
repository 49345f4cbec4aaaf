"""Cancelled gRPC streams at shutdown: Triton 2.51 waits out its exit timeout, within the grace.

After cancelled ModelStreamInfer calls, SIGTERM finds "1 live models" until
--exit-timeout-secs expires and exits with status 1 (measured: 100 cancelled streams, exit 1
after 15.8 s; none, exit 0 after 3.8 s; docs/security.md). The edge routes no streaming
method; inside the cluster the Deployment's arithmetic still bounds the stop: the drain's
deadline plus the exit timeout stays under the grace period, so the kubelet never has to kill.

Not in tests/e2e: it is Triton's own exit behaviour, measured on one local server.
"""

from __future__ import annotations

import signal

import grpc
import pytest
from inference_tools.local_server import LocalTritonServer
from lab.reliability.local_replicas import replica_flags
from tritonclient.grpc import service_pb2, service_pb2_grpc

from tests.clients import MODEL

pytestmark = [pytest.mark.server, pytest.mark.slow]

CANCELLED_STREAMS = 100


def one_text_request() -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[1, 1])
    tensor.contents.bytes_contents.append(b"hello")
    return request


def test_sigterm_after_cancelled_streams_exits_within_the_grace_period(model_repository, lifecycle):
    server = LocalTritonServer(model_repository, extra_args=replica_flags(lifecycle))
    server.start(timeout_s=300)
    try:
        with grpc.insecure_channel(server.grpc_url) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            for _ in range(CANCELLED_STREAMS):
                call = stub.ModelStreamInfer(iter([one_text_request()]))
                next(call)  # answered; the stream stays open until the client cancels it
                call.cancel()
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        # What is left of the grace period once the preStop drain has used its deadline.
        budget_s = lifecycle.termination_grace_s - lifecycle.drain_deadline_s
        assert lifecycle.exit_timeout_s < budget_s
        status = server.process.wait(timeout=budget_s)
        # 2.51 exits 1 ("Exit timeout expired") here; 0 would mean the streams no longer hold it.
        assert status in (0, 1)
    finally:
        server.stop(timeout_s=5)
