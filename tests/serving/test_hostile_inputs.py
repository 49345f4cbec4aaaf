"""Tensors no client of the ensemble sends, sent to the composing models directly.

The edge routes only the entry model over HTTP, but gRPC carries the model name inside the
message, and pods can be reached inside the cluster: the encoder bounds what it
accepts itself, with a 400 before it allocates for it.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from inference_tools.model_config import read_model_config
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from python_backend.contract import EMBEDDING_SIZE, SENTENCE_EMBEDDING
from tests.clients import MODEL, PROTOCOLS, infer

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def max_sequence_length(model_repository) -> int:
    minilm = read_model_config(model_repository / "minilm" / "config.pbtxt")
    return int(minilm.parameters["max_sequence_length"].string_value)


def test_sequence_limits_agree_with_the_tokenizer_and_the_position_table(model_repository):
    def parameter(path, key: str) -> int:
        return int(read_model_config(model_repository / path).parameters[key].string_value)

    limit = parameter("minilm/config.pbtxt", "max_sequence_length")
    assert parameter("minilm/configs/gpu.pbtxt", "max_sequence_length") == limit
    assert parameter("tokenizer/config.pbtxt", "max_tokens") == limit
    graph = onnx.load(model_repository / "minilm" / "1" / "model.onnx", load_external_data=False)
    (positions,) = [t for t in graph.graph.initializer if t.name == "embeddings.position_and_type0"]
    assert limit <= positions.dims[0]


def token_inputs(batch: int, length: int) -> dict[str, np.ndarray]:
    ids = np.full((batch, length), 1000, dtype=np.int64)
    return {"input_ids": ids, "attention_mask": np.ones_like(ids)}


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encoder_refuses_sequences_past_its_limit_with_400(connect, protocol, max_sequence_length):
    client = connect(protocol)
    embeddings = infer(
        client, protocol, token_inputs(2, max_sequence_length), "minilm", SENTENCE_EMBEDDING
    )
    assert embeddings.shape == (2, EMBEDDING_SIZE)
    # The shape that left the encoder's stub at 1.46 GB before it failed with a 500. Over HTTP
    # its 12.8 MB body is past the body cap, refused with 413 by the HTTP guard; 2 rows fit.
    rows = 8 if protocol == "grpc" else 2
    with pytest.raises(InferenceServerException) as refused:
        infer(client, protocol, token_inputs(rows, 100_000), "minilm", SENTENCE_EMBEDDING)
    assert refused.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")
    assert f"the limit is {max_sequence_length}" in refused.value.message()
    if protocol == "http":
        with pytest.raises(InferenceServerException) as too_large:
            infer(client, protocol, token_inputs(8, 100_000), "minilm", SENTENCE_EMBEDDING)
        assert too_large.value.status() == "413"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_encoder_refuses_inputs_the_graph_cannot_take_with_400(connect, protocol):
    client = connect(protocol)
    inputs = token_inputs(1, 16)
    inputs["attention_mask"] = np.ones((1, 32), dtype=np.int64)
    with pytest.raises(InferenceServerException) as refused:
        infer(client, protocol, inputs, "minilm", SENTENCE_EMBEDDING)
    assert refused.value.status() in ("400", "StatusCode.INVALID_ARGUMENT")


def test_grpc_negative_batch_is_answered_as_one_text(triton_server):
    import grpc

    request = service_pb2.ModelInferRequest(model_name=MODEL)
    tensor = request.inputs.add(name="TEXT", datatype="BYTES", shape=[-(2**63), 1])
    tensor.contents.bytes_contents.append(b"hello")
    with grpc.insecure_channel(triton_server.grpc_url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        response = stub.ModelInfer(request, timeout=60)
    assert [list(output.shape) for output in response.outputs] == [[384]]
