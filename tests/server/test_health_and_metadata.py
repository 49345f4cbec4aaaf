"""The server's own endpoints: health, metadata and config, as clients see them."""

import urllib.request

import pytest

from tests.server.helpers import PROTOCOLS

pytestmark = pytest.mark.server
MODELS = ("text_embedding", "tokenizer", "minilm")


@pytest.mark.parametrize("endpoint", ["/v2/health/live", "/v2/health/ready"])
def test_health_endpoints_answer_200(triton_server, endpoint):
    with urllib.request.urlopen(f"http://{triton_server.http_url}{endpoint}", timeout=5) as reply:
        assert reply.status == 200


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_every_model_is_ready(connect, protocol):
    client = connect(protocol)
    assert client.is_server_live() and client.is_server_ready()
    for model in MODELS:
        assert client.is_model_ready(model), model


def test_ensemble_metadata_describes_text_in_embedding_out(connect):
    metadata = connect("http").get_model_metadata("text_embedding")
    assert metadata["inputs"] == [{"name": "TEXT", "datatype": "BYTES", "shape": [-1, 1]}]
    assert metadata["outputs"] == [{"name": "EMBEDDING", "datatype": "FP32", "shape": [-1, 384]}]


def test_grpc_config_shows_the_onnxruntime_backend_and_batching(connect):
    config = connect("grpc").get_model_config("minilm", as_json=True)["config"]
    assert config["backend"] == "onnxruntime"
    assert int(config["max_batch_size"]) == 64
    assert "dynamic_batching" in config
    assert [i["name"] for i in config["input"]] == ["input_ids", "attention_mask"]
