"""The pooling head of the encoder graph (masked mean, then L2 normalisation), run by ONNX
Runtime on the lookup encoder, whose token states are rows of a known table."""

import numpy as np
import onnxruntime as ort
import pytest
from inference_tools import bert_onnx
from onnx import numpy_helper

HIDDEN, VOCAB = 8, 50


@pytest.fixture(scope="module")
def lookup() -> tuple[ort.InferenceSession, np.ndarray]:
    model = bert_onnx.build_lookup_encoder_model(hidden_size=HIDDEN, vocab_size=VOCAB)
    (table,) = (
        numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "lookup.table"
    )
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session, table


def embed(session: ort.InferenceSession, ids: list[list[int]], mask: list[list[int]]) -> np.ndarray:
    feeds = {
        "input_ids": np.array(ids, np.int64),
        "attention_mask": np.array(mask, np.int64),
    }
    (embeddings,) = session.run([bert_onnx.SENTENCE_EMBEDDING], feeds)
    return embeddings


def test_output_is_the_unit_length_mean_of_the_real_tokens(lookup):
    session, table = lookup
    got = embed(session, [[3, 7, 9, 1]], [[1, 1, 1, 0]])
    mean = table[[3, 7, 9]].mean(axis=0)
    np.testing.assert_allclose(got[0], mean / np.linalg.norm(mean), rtol=1e-5, atol=1e-6)
    assert got.shape == (1, HIDDEN) and got.dtype == np.float32


def test_padding_positions_do_not_change_the_embedding(lookup):
    session, _ = lookup
    alone = embed(session, [[4, 5, 6]], [[1, 1, 1]])
    padded = embed(session, [[4, 5, 6, 11, 12, 13, 14, 15]], [[1, 1, 1, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(alone, padded, rtol=1e-6, atol=1e-7)


def test_rows_of_a_batch_are_pooled_on_their_own(lookup):
    session, _ = lookup
    batch = embed(session, [[4, 5, 6], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
    np.testing.assert_allclose(batch[1], embed(session, [[8]], [[1]])[0], rtol=1e-6, atol=1e-7)


def test_fully_masked_row_gives_zeros_not_nan(lookup):
    session, _ = lookup
    pooled = embed(session, [[1, 2]], [[0, 0]])
    assert np.all(np.isfinite(pooled)) and not pooled.any()
