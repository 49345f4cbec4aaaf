"""Property-based tests of the tokenizer and pooler code paths (no server: the real code and
the real tokenizer.json, inputs drawn by hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from python_backend.errors import InvalidInputError
from python_backend.pooler_model import PoolerModel
from python_backend.pooling import mean_pool_normalize
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
    model = TokenizerModel(tokenizer, OUTPUT_DTYPES, max_text_bytes=SMALL_LIMIT)
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


hidden_sizes = st.integers(min_value=1, max_value=16)


@st.composite
def states_and_masks(draw):
    batch = draw(st.integers(min_value=1, max_value=4))
    seq = draw(st.integers(min_value=1, max_value=12))
    hidden = draw(hidden_sizes)
    finite = st.floats(min_value=-1e3, max_value=1e3, width=32)
    states = draw(arrays(np.float32, (batch, seq, hidden), elements=finite))
    mask = draw(arrays(np.int64, (batch, seq), elements=st.integers(0, 1)))
    return states, mask


@settings(max_examples=200, deadline=None)
@given(data=states_and_masks())
def test_pooled_vectors_are_unit_length_or_zero_and_ignore_masked_tokens(data):
    states, mask = data
    pooled = mean_pool_normalize(states, mask)
    assert pooled.shape == (states.shape[0], states.shape[2])
    assert np.isfinite(pooled).all()
    norms = np.linalg.norm(pooled, axis=1)
    for row, norm in enumerate(norms):
        mean = (states[row] * mask[row][:, None]).sum(axis=0)
        if mask[row].sum() == 0 or not np.any(np.abs(mean) > 1e-6):
            assert norm <= 1.0 + 1e-4
        else:
            assert norm == pytest.approx(1.0, abs=1e-4)
    # Whatever sits at masked positions does not change the result.
    scrambled = np.where(mask[:, :, None] == 1, states, np.float32(123.0))
    np.testing.assert_allclose(mean_pool_normalize(scrambled, mask), pooled, atol=1e-5)


@settings(max_examples=100, deadline=None)
@given(
    state_shape=st.lists(st.integers(0, 5), min_size=1, max_size=4),
    mask_shape=st.lists(st.integers(0, 5), min_size=1, max_size=3),
)
def test_pooler_refuses_inconsistent_shapes_with_a_client_error(state_shape, mask_shape):
    states = np.zeros(state_shape, np.float32)
    mask = np.ones(mask_shape, np.int64)
    consistent = len(state_shape) == 3 and len(mask_shape) == 2 and state_shape[:2] == mask_shape
    (result,) = PoolerModel({"EMBEDDING": np.dtype(np.float32)}).run([(states, mask)])
    if consistent:
        assert isinstance(result, dict)
        assert result["EMBEDDING"].shape == (state_shape[0], state_shape[2])
    else:
        assert isinstance(result, InvalidInputError), (state_shape, mask_shape, result)
