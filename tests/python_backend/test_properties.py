"""Property-based tests of the tokenizer and of the encoder graph's pooling head (no server: the
real code, the real tokenizer.json and ONNX Runtime, inputs drawn by hypothesis)."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from inference_tools import bert_onnx

from python_backend.errors import InvalidInputError
from python_backend.texts import decode_texts
from python_backend.tokenization import DEFAULT_BUCKETS, TextTokenizer
from python_backend.tokenizer_model import TokenizerModel

OUTPUT_DTYPES = {"input_ids": np.dtype(np.int64), "attention_mask": np.dtype(np.int64)}
SMALL_LIMIT = 200
fixture_settings = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

texts = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=0, max_size=400
)
raw_rows = st.one_of(
    texts.map(lambda text: text.encode("utf-8")),
    st.binary(max_size=300),  # arbitrary bytes: often not UTF-8
)


@pytest.fixture(scope="module")
def tokenizer(tokenizer_json) -> TextTokenizer:
    return TextTokenizer(tokenizer_json, max_tokens=256, buckets=DEFAULT_BUCKETS)


# No per-example deadline: on a loaded machine one example's wall time says nothing of the code.
@settings(deadline=None)
@given(rows=st.lists(raw_rows, min_size=1, max_size=8), layout=st.sampled_from(["flat", "column"]))
def test_decode_texts_returns_every_row_or_refuses_with_a_reason(rows, layout):
    tensor = np.array(rows, dtype=object)
    if layout == "column":
        tensor = tensor.reshape(-1, 1)
    try:
        decoded = decode_texts(tensor, "TEXT", max_text_bytes=SMALL_LIMIT)
    except InvalidInputError as error:
        # Refused only for a reason the rows really have, and the message names the row.
        bad = [i for i, row in enumerate(rows) if len(row) > SMALL_LIMIT or not _is_utf8(row)]
        assert bad, (rows, error)
        assert f"row {bad[0]}" in str(error)
        return
    assert decoded == [row.decode("utf-8") for row in rows]


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@fixture_settings
@given(batch=st.lists(texts, min_size=1, max_size=6))
def test_token_tensors_are_bucketed_masked_and_start_with_cls(tokenizer, batch):
    (encoded,) = tokenizer.encode_requests([batch])
    rows, width = encoded.input_ids.shape
    assert rows == len(batch)
    assert width in DEFAULT_BUCKETS
    mask = encoded.attention_mask
    assert set(np.unique(mask)) <= {0, 1}
    lengths = mask.sum(axis=1)
    assert (lengths >= 2).all() and (lengths <= 256).all()  # [CLS] ... [SEP], truncated at 256
    for row, length in zip(range(rows), lengths, strict=True):
        # Real tokens first, padding after: the mask is a prefix of ones.
        assert mask[row, :length].all() and not mask[row, length:].any()
        assert encoded.input_ids[row, 0] == tokenizer._tokenizer.token_to_id("[CLS]")
        assert encoded.input_ids[row, length - 1] == tokenizer._tokenizer.token_to_id("[SEP]")
    # The bucket is the smallest that holds the longest row.
    smaller = [b for b in DEFAULT_BUCKETS if b < width]
    assert not smaller or lengths.max() > smaller[-1]


@fixture_settings
@given(requests=st.lists(st.lists(raw_rows, min_size=1, max_size=4), min_size=1, max_size=6))
def test_one_bad_request_fails_alone_in_a_tokenizer_batch(tokenizer, requests):
    # A token budget that holds any request drawn here: this property is about bytes and UTF-8
    # (the budget has its own test in test_tokenization.py).
    model = TokenizerModel(
        tokenizer, OUTPUT_DTYPES, max_text_bytes=SMALL_LIMIT, max_request_tokens=4 * 256
    )
    tensors = [np.array(rows, dtype=object).reshape(-1, 1) for rows in requests]
    results = model.run(tensors)
    assert len(results) == len(requests)
    for rows, result in zip(requests, results, strict=True):
        valid = all(len(r) <= SMALL_LIMIT and _is_utf8(r) for r in rows)
        if valid:
            assert isinstance(result, dict), result
            assert result["input_ids"].shape[0] == len(rows)
            assert result["input_ids"].dtype == np.int64
        else:
            assert isinstance(result, InvalidInputError), result


LOOKUP_VOCAB = 64
# The pooling head on a lookup table: token states are rows of the table, so any ids and masks
# exercise it. Built once; hypothesis calls the test many times.
LOOKUP = ort.InferenceSession(
    bert_onnx.build_lookup_encoder_model(
        hidden_size=16, vocab_size=LOOKUP_VOCAB
    ).SerializeToString(),
    providers=["CPUExecutionProvider"],
)


@st.composite
def ids_and_masks(draw):
    batch = draw(st.integers(min_value=1, max_value=4))
    seq = draw(st.integers(min_value=1, max_value=12))
    ids = draw(arrays(np.int64, (batch, seq), elements=st.integers(0, LOOKUP_VOCAB - 1)))
    mask = draw(arrays(np.int64, (batch, seq), elements=st.integers(0, 1)))
    return ids, mask


def pooled(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    feeds = {"input_ids": ids, "attention_mask": mask}
    return LOOKUP.run([bert_onnx.SENTENCE_EMBEDDING], feeds)[0]


@settings(max_examples=200, deadline=None)
@given(data=ids_and_masks())
def test_pooled_vectors_are_unit_length_or_zero_and_ignore_masked_tokens(data):
    ids, mask = data
    embeddings = pooled(ids, mask)
    assert embeddings.shape == (ids.shape[0], 16)
    assert np.isfinite(embeddings).all()
    for row, norm in enumerate(np.linalg.norm(embeddings, axis=1)):
        if mask[row].sum() == 0:
            assert norm == 0.0
        else:
            assert norm == pytest.approx(1.0, abs=1e-4)
    # Whatever token sits at a masked position does not change the result.
    scrambled = np.where(mask == 1, ids, (ids + 17) % LOOKUP_VOCAB)
    np.testing.assert_allclose(pooled(scrambled, mask), embeddings, atol=1e-5)
