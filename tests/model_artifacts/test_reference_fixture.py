"""The served artefacts, run in-process, reproduce the PyTorch reference embeddings.

tests/fixtures/reference_embeddings.json was computed by transformers' BertModel (see
tools/regenerate_reference_embeddings.py). Here the same texts go through what Triton runs:
the built tokenizer.json with the tokenizer model's padding, the built model.onnx (encoder, mean
pooling and normalisation in one graph) on ONNX Runtime, without a server.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from inference_tools.model_artifacts import ENCODER_FILE, WEIGHTS_SHA256

from python_backend.tokenization import EncodedBatch, TextTokenizer

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference_embeddings.json"
MIN_COSINE = 0.9999


@pytest.fixture(scope="module")
def reference() -> dict:
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def tokenizer(tokenizer_json: Path) -> TextTokenizer:
    return TextTokenizer(tokenizer_json)


@pytest.fixture(scope="module")
def encoder(model_repository: Path) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(model_repository / ENCODER_FILE), providers=["CPUExecutionProvider"]
    )


def embed(encoder: ort.InferenceSession, batch: EncodedBatch) -> np.ndarray:
    feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    (embeddings,) = encoder.run(["sentence_embedding"], feeds)
    return embeddings


def assert_close_to_reference(got: np.ndarray, reference: dict, how: str) -> None:
    expected = np.array([case["embedding"] for case in reference["cases"]], dtype=np.float64)
    cosine = np.sum(got * expected, axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    worst = int(np.argmin(cosine))
    assert cosine[worst] >= MIN_COSINE, (
        f"{how}: case {reference['cases'][worst]['name']!r} has cosine {cosine[worst]:.6f}"
    )


def test_fixture_describes_the_served_weights_and_covers_the_edge_cases(reference):
    assert reference["weights_sha256"] == WEIGHTS_SHA256
    names = {case["name"] for case in reference["cases"]}
    assert {"empty", "cjk", "emoji", "accents", "far_over_256_tokens"} <= names
    assert all(len(case["embedding"]) == 384 for case in reference["cases"])


def test_token_counts_match_the_reference_tokenization(reference, tokenizer):
    texts = [case["text"] for case in reference["cases"]]
    counts = [len(ids) for ids in tokenizer.encode(texts)]
    assert counts == [case["token_count"] for case in reference["cases"]]
    assert max(counts) == reference["max_seq_length"]  # the long text is truncated, not dropped


def test_each_text_alone_matches_the_reference(reference, tokenizer, encoder):
    requests = [[case["text"]] for case in reference["cases"]]
    got = np.concatenate([embed(encoder, batch) for batch in tokenizer.encode_requests(requests)])
    assert_close_to_reference(got, reference, "one text per request")


def test_all_texts_in_one_padded_batch_match_the_reference(reference, tokenizer, encoder):
    (batch,) = tokenizer.encode_requests([[case["text"] for case in reference["cases"]]])
    assert batch.input_ids.shape == (len(reference["cases"]), reference["max_seq_length"])
    assert_close_to_reference(embed(encoder, batch), reference, "all texts in one batch")
