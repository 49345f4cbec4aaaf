"""The ONNX encoder built from the real all-MiniLM-L6-v2 weights, and the build around it."""

from __future__ import annotations

import json
import math
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from inference_tools import bert_onnx, model_artifacts
from inference_tools.cli import main as cli_main
from inference_tools.model_artifacts import (
    ENCODER_FILE,
    STAMP_FILE,
    TOKENIZER_FILE,
    ModelArtifactError,
    ModelSource,
    build_model_artifacts,
    read_model_source,
)
from tokenizers import Tokenizer

SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "Ünïcödé: naïve café, 東京, 🙂",
    "a",
]


@pytest.fixture(scope="session")
def model_source() -> ModelSource:
    return read_model_source()


@pytest.fixture(scope="session")
def weights(model_source: ModelSource) -> dict[str, np.ndarray]:
    return model_source.weights()


@pytest.fixture(scope="session")
def encoder_path(tmp_path_factory, model_source: ModelSource, weights) -> Path:
    path = tmp_path_factory.mktemp("encoder") / "model.onnx"
    bert_onnx.build_bert_encoder(weights, model_source.bert_config, path)
    return path


@pytest.fixture(scope="session")
def encoder(encoder_path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="session")
def token_ids(model_source: ModelSource) -> list[list[int]]:
    tokenizer = Tokenizer.from_str(model_artifacts.serving_tokenizer_json(model_source).decode())
    return [encoding.ids for encoding in tokenizer.encode_batch(SENTENCES)]


def padded(rows: list[list[int]], width: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    width = width or max(len(row) for row in rows)
    input_ids = np.zeros((len(rows), width), np.int64)
    attention_mask = np.zeros((len(rows), width), np.int64)
    for index, row in enumerate(rows):
        input_ids[index, : len(row)] = row
        attention_mask[index, : len(row)] = 1
    return input_ids, attention_mask


def run_encoder(encoder: ort.InferenceSession, input_ids, attention_mask) -> np.ndarray:
    feeds = {"input_ids": input_ids, "attention_mask": attention_mask}
    return encoder.run(["sentence_embedding"], feeds)[0]


# An independent BERT forward pass in float64, written from the BERT paper's equations and the
# safetensors names; it shares no code with the graph builder.
_erf = np.vectorize(math.erf)


def _layer_norm(x, weights, prefix, eps):
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * weights[f"{prefix}.weight"] + weights[
        f"{prefix}.bias"
    ]


def _dense(x, weights, prefix):
    return x @ weights[f"{prefix}.weight"].T + weights[f"{prefix}.bias"]


def numpy_bert(weights: Mapping[str, np.ndarray], config: Mapping, input_ids, attention_mask):
    w = {name: array.astype(np.float64) for name, array in weights.items()}
    eps, heads = config["layer_norm_eps"], config["num_attention_heads"]
    batch, length = input_ids.shape
    hidden = (
        w["embeddings.word_embeddings.weight"][input_ids]
        + w["embeddings.position_embeddings.weight"][:length]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    hidden = _layer_norm(hidden, w, "embeddings.LayerNorm", eps)
    head_size = hidden.shape[-1] // heads
    bias = np.where(attention_mask[:, None, None, :] > 0, 0.0, -1e9)
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}"

        def heads_of(name, x=hidden, p=p):
            projected = _dense(x, w, f"{p}.attention.self.{name}")
            return projected.reshape(batch, length, heads, head_size).transpose(0, 2, 1, 3)

        scores = heads_of("query") @ heads_of("key").transpose(0, 1, 3, 2) / math.sqrt(head_size)
        scores = scores + bias
        probabilities = np.exp(scores - scores.max(-1, keepdims=True))
        probabilities /= probabilities.sum(-1, keepdims=True)
        context = (
            (probabilities @ heads_of("value")).transpose(0, 2, 1, 3).reshape(batch, length, -1)
        )
        attended = _dense(context, w, f"{p}.attention.output.dense") + hidden
        hidden = _layer_norm(attended, w, f"{p}.attention.output.LayerNorm", eps)
        intermediate = _dense(hidden, w, f"{p}.intermediate.dense")
        activated = 0.5 * intermediate * (1.0 + _erf(intermediate / math.sqrt(2.0)))
        output = _dense(activated, w, f"{p}.output.dense") + hidden
        hidden = _layer_norm(output, w, f"{p}.output.LayerNorm", eps)
    return hidden


def numpy_mean_pool_normalize(hidden, attention_mask):
    """sentence-transformers' Pooling(mean) + Normalize, in float64."""
    weights = attention_mask[..., None].astype(np.float64)
    mean = (hidden * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
    return mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)


def test_graph_passes_the_full_onnx_checker(encoder_path: Path):
    onnx.checker.check_model(str(encoder_path), full_check=True)


def test_graph_interface_has_dynamic_batch_and_sequence(encoder_path: Path):
    model = onnx.load(str(encoder_path))
    assert {(o.domain, o.version) for o in model.opset_import} == {("", bert_onnx.OPSET)}
    assert bert_onnx.OPSET >= 17

    def signature(values):
        return {
            value.name: (
                value.type.tensor_type.elem_type,
                [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim],
            )
            for value in values
        }

    tokens = (onnx.TensorProto.INT64, ["batch", "sequence"])
    assert signature(model.graph.input) == {"input_ids": tokens, "attention_mask": tokens}
    assert signature(model.graph.output) == {
        "sentence_embedding": (onnx.TensorProto.FLOAT, ["batch", 384])
    }
    float_types = {
        onnx.TensorProto.FLOAT,
        onnx.TensorProto.FLOAT16,
        onnx.TensorProto.DOUBLE,
        onnx.TensorProto.BFLOAT16,
    }
    weight_types = {t.data_type for t in model.graph.initializer if t.data_type in float_types}
    assert weight_types == {onnx.TensorProto.FLOAT}


def test_embeddings_match_an_independent_numpy_bert(encoder, weights, model_source, token_ids):
    # Sentences of different lengths in one batch: the shorter ones carry padding.
    input_ids, attention_mask = padded(token_ids)
    got = run_encoder(encoder, input_ids, attention_mask)
    hidden = numpy_bert(weights, model_source.bert_config, input_ids, attention_mask)
    expected = numpy_mean_pool_normalize(hidden, attention_mask)
    assert got.shape == (len(SENTENCES), 384)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_padding_does_not_change_the_embedding(encoder, token_ids):
    sentence = token_ids[0]
    alone = run_encoder(encoder, *padded([sentence]))
    ids, mask = padded([sentence], width=len(sentence) + 37)
    with_padding = run_encoder(encoder, ids, mask)
    np.testing.assert_allclose(with_padding, alone, atol=1e-5)


def test_batch_neighbours_do_not_change_a_sentence(encoder, token_ids):
    alone = run_encoder(encoder, *padded([token_ids[1]]))
    batched = run_encoder(encoder, *padded(token_ids))
    np.testing.assert_allclose(batched[1], alone[0], atol=1e-5)


def test_ids_outside_the_vocabulary_read_as_unknown_and_fail_no_batch(
    encoder, model_source, token_ids
):
    # One client's id past the table (or below zero) used to fail the whole batched session
    # call, everyone's requests with it; the C++ backend in the image runs batches the same way.
    vocabulary = model_source.bert_config["vocab_size"]
    unknown = model_source.unknown_token_id()
    honest = run_encoder(encoder, *padded([token_ids[0], [101, unknown, 102]]))
    for bad_id in (vocabulary, 1_000_000, -1, -vocabulary, -(2**63)):
        batched = run_encoder(encoder, *padded([token_ids[0], [101, bad_id, 102]]))
        np.testing.assert_allclose(batched, honest, atol=1e-5)


def test_lookup_encoder_has_the_encoder_interface(encoder_path: Path):
    real = onnx.load(str(encoder_path))
    lookup = bert_onnx.build_lookup_encoder_model()

    def interface(model):
        values = [*model.graph.input, *model.graph.output]
        return [(value.name, value.type.tensor_type) for value in values]

    assert interface(lookup) == interface(real)


def test_build_is_skipped_when_up_to_date_and_redone_when_inputs_change(tmp_path: Path):
    repository = tmp_path / "model_repository"
    assert build_model_artifacts(repository) is True
    encoder_file = repository / ENCODER_FILE
    assert encoder_file.is_file() and (repository / TOKENIZER_FILE).is_file()
    built_at = encoder_file.stat().st_mtime_ns
    assert build_model_artifacts(repository) is False
    assert encoder_file.stat().st_mtime_ns == built_at

    # Another weights release (as the stamp would record it) must trigger a rebuild.
    stamp_path = repository / STAMP_FILE
    stamp = json.loads(stamp_path.read_text())
    stamp["inputs"]["encoder_fingerprint"] = "0" * 64
    stamp_path.write_text(json.dumps(stamp))
    assert build_model_artifacts(repository) is True
    assert build_model_artifacts(repository) is False

    # A damaged output is rebuilt rather than trusted.
    (repository / TOKENIZER_FILE).write_text("{}")
    assert build_model_artifacts(repository) is True
    assert build_model_artifacts(repository, force=True) is True


def test_served_tokenizer_truncates_at_256_and_does_not_pad(model_source):
    tokenizer = Tokenizer.from_str(model_artifacts.serving_tokenizer_json(model_source).decode())
    assert len(tokenizer.encode("word " * 1000).ids) == 256
    assert tokenizer.encode("hello").ids == [101, 7592, 102]


def test_damaged_weights_are_refused_with_what_to_do(tmp_path: Path, model_source):
    damaged_zip = tmp_path / "model.zip"
    with zipfile.ZipFile(damaged_zip, "w") as archive:
        archive.writestr(model_artifacts.WEIGHTS_MEMBER, model_source.weights_bytes[:4096])
        for member, content in (
            (model_artifacts.BERT_CONFIG_MEMBER, model_source.bert_config),
            (model_artifacts.SENTENCE_CONFIG_MEMBER, model_source.sentence_config),
            (model_artifacts.POOLING_CONFIG_MEMBER, model_source.pooling_config),
        ):
            archive.writestr(member, json.dumps(content))
        archive.writestr(model_artifacts.TOKENIZER_MEMBER, model_source.tokenizer_json)
    with pytest.raises(
        ModelArtifactError, match=r"expected 53aa5117.*--force-reinstall.*make setup"
    ):
        build_model_artifacts(tmp_path / "repository", model_zip=damaged_zip)
    assert not (tmp_path / "repository" / ENCODER_FILE).exists()


def test_missing_model_package_says_to_run_make_setup(monkeypatch):
    monkeypatch.setattr(model_artifacts.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelArtifactError, match=r"not installed: run `make setup`"):
        model_artifacts.find_model_zip()


def test_build_models_command(tmp_path: Path, capsys):
    repository = tmp_path / "repository"
    assert cli_main(["build-models", "--model-repository", str(repository)]) == 0
    assert (repository / ENCODER_FILE).is_file()
    with pytest.raises(SystemExit) as exited:
        cli_main(["build-models", "--help"])
    assert exited.value.code == 0
    help_text = capsys.readouterr().out
    assert "--force" in help_text and "sha256" in help_text
