"""One client's bad tensors fail that client's requests only, never the batch they join.

Triton's dynamic batcher merges same-shape requests into one session call. Token ids past the
encoder's vocabulary used to fail that call, and so 53-74% of eight valid clients' requests and
the liveness canary, while four hostile loops ran beside them.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from python_backend.contract import SENTENCE_EMBEDDING
from tests.clients import PROTOCOLS, client_for, embed, infer

pytestmark = pytest.mark.server

VALID_CLIENTS = 8
HOSTILE_CLIENTS = 4
ATTACK_SECONDS = 8.0
BAD_IDS = (1_000_000, 30522, -1, -30522, -(2**63))


def token_rows(ids: list[int], mask: list[int] | None = None) -> dict[str, np.ndarray]:
    """One 16-token row of ids and its mask (ones over `ids` unless given), padded with zeros."""
    padding = [0] * (16 - len(ids))
    return {
        "input_ids": np.array([ids + padding], dtype=np.int64),
        "attention_mask": np.array([(mask or [1] * len(ids)) + padding], dtype=np.int64),
    }


def token_request(ids: list[int]) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name="minilm")
    for name, value in token_rows(ids).items():
        request.inputs.add(name=name, datatype="INT64", shape=list(value.shape))
        request.raw_input_contents.append(value.tobytes())
    return request


def test_valid_clients_beside_out_of_vocabulary_loops_lose_nothing(triton_server):
    deadline = time.monotonic() + ATTACK_SECONDS
    valid: Counter[str] = Counter()
    hostile: Counter[str] = Counter()

    def valid_client() -> None:
        client = client_for(triton_server, "grpc")
        try:
            while time.monotonic() < deadline:
                try:
                    embed(client, "grpc", ["a valid client's sentence"])
                    valid["ok"] += 1
                except InferenceServerException as error:
                    valid[str(error.status())] += 1
        finally:
            client.close()

    def hostile_client(bad_id: int) -> None:
        with grpc.insecure_channel(triton_server.grpc_url) as channel:
            stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
            while time.monotonic() < deadline:
                try:
                    stub.ModelInfer(token_request([101, bad_id, 102]), timeout=60)
                    hostile["OK"] += 1
                except grpc.RpcError as error:
                    hostile[error.code().name] += 1

    threads = [threading.Thread(target=valid_client) for _ in range(VALID_CLIENTS)]
    threads += [
        threading.Thread(target=hostile_client, args=(BAD_IDS[n % len(BAD_IDS)],))
        for n in range(HOSTILE_CLIENTS)
    ]
    for thread in threads:
        thread.start()
    # The liveness probe, as the kubelet runs it, while the attack goes on.
    probes = [
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pod_hooks.health_probe",
                f"--url=http://{triton_server.http_url}",
                "--timeout-seconds=4.5",
            ],
            capture_output=True,
            text=True,
            timeout=30,
        )
        for _ in range(3)
    ]
    for thread in threads:
        thread.join()
    print(f"valid: {dict(valid)}, hostile: {dict(hostile)}")
    assert set(valid) == {"ok"} and valid["ok"] > 0
    assert set(hostile) == {"INVALID_ARGUMENT"}
    assert [probe.returncode for probe in probes] == [0, 0, 0], [p.stdout for p in probes]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("ids", "mask", "says"),
    [
        ([101, 1_000_000, 102], None, "0..30521"),
        ([101, -5, 102], None, "0..30521"),
        ([101, -(2**63), 102], None, "0..30521"),
        ([101, 2000, 102], [0, 0, 0], "no non-zero value"),
        ([101, 2000, 102], [1, 2, 1], "0..1"),
    ],
    ids=["past-vocabulary", "negative", "int64-min", "zero-mask", "mask-not-0-1"],
)
def test_encoder_inputs_it_cannot_answer_truly_get_400(connect, protocol, ids, mask, says):
    with pytest.raises(InferenceServerException) as refused:
        infer(
            connect(protocol),
            protocol,
            token_rows(ids, mask),
            "minilm",
            SENTENCE_EMBEDDING,
        )
    assert refused.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")
    assert says in refused.value.message()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_an_empty_sequence_gets_400(connect, protocol):
    empty = np.zeros((1, 0), dtype=np.int64)
    with pytest.raises(InferenceServerException) as refused:
        infer(
            connect(protocol),
            protocol,
            {"input_ids": empty, "attention_mask": empty},
            "minilm",
            SENTENCE_EMBEDDING,
        )
    assert refused.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")
