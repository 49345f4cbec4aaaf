"""Embeddings from the running ensemble: shape, reference agreement, semantics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from inference_tools.model_config import read_model_config

from tests.clients import PROTOCOLS, embed

pytestmark = pytest.mark.server
REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "reference_embeddings.json"


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_batch_of_texts_gives_unit_vectors_of_384(connect, protocol):
    vectors = embed(connect(protocol), protocol, ["a cat", "a dog", "tax law"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_embeddings_match_the_transformers_reference(connect, protocol, model_repository):
    reference = json.loads(REFERENCE.read_text())
    texts = [case["text"] for case in reference["cases"]]
    expected = np.array([case["embedding"] for case in reference["cases"]], dtype=np.float32)
    client = connect(protocol)
    # One text per request, and as many in one request as the token budget holds whatever
    # their lengths (each padded to the longest): batching must not change results.
    tokenizer = read_model_config(model_repository / "tokenizer" / "config.pbtxt")
    per_request = int(tokenizer.parameters["max_request_tokens"].string_value) // int(
        tokenizer.parameters["max_tokens"].string_value
    )
    assert per_request > 1
    single = np.concatenate([embed(client, protocol, [text]) for text in texts])
    together = np.concatenate(
        [
            embed(client, protocol, texts[start : start + per_request])
            for start in range(0, len(texts), per_request)
        ]
    )
    for got in (single, together):
        cosine = np.sum(got * expected, axis=1) / (
            np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
        )
        worst = int(np.argmin(cosine))
        assert cosine.min() >= 0.9999, f"{texts[worst]!r}: cosine {cosine[worst]:.6f}"


def test_similar_sentences_are_closer_than_unrelated_ones(connect):
    client = connect("grpc")
    anchor, paraphrase, unrelated = embed(
        client,
        "grpc",
        [
            "The weather is lovely today.",
            "It is a really sunny and pleasant day.",
            "The quarterly tax filing deadline was moved.",
        ],
    )
    assert anchor @ paraphrase > anchor @ unrelated + 0.3
