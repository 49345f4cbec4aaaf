import os

import numpy as np
import pytest

from python_backend.errors import InvalidInputError
from python_backend.tokenization import TextTokenizer, bucket_length, parse_buckets
from python_backend.tokenizer_model import TokenizerModel

OUTPUT_DTYPES = {"input_ids": np.dtype(np.int64), "attention_mask": np.dtype(np.int64)}


@pytest.mark.parametrize(
    ("length", "expected"), [(1, 16), (16, 16), (17, 32), (200, 256), (256, 256), (900, 256)]
)
def test_bucket_is_the_smallest_that_fits(length, expected):
    assert bucket_length(length, (16, 32, 64, 128, 256)) == expected


def test_bucket_spec_is_sorted_and_capped_at_max_tokens():
    assert parse_buckets("64, 16,512,32", 256) == (16, 32, 64, 256)
    with pytest.raises(ValueError):
        parse_buckets("0,16", 256)


def test_requests_are_padded_to_their_own_bucket(tokenizer_json):
    tokenizer = TextTokenizer(tokenizer_json)
    short, long = tokenizer.encode_requests([["hi"], ["word " * 40, "hello there"]])
    assert short.input_ids.shape == (1, 16)
    assert long.input_ids.shape == (2, 64)
    assert long.input_ids.dtype == np.int64
    # [CLS] hi [SEP]: three real tokens, the rest is padding with mask 0.
    assert short.attention_mask[0].tolist() == [1, 1, 1] + [0] * 13
    assert short.input_ids[0, 3:].tolist() == [tokenizer.pad_id] * 13


def test_truncates_to_max_tokens_like_sentence_transformers(tokenizer_json):
    tokenizer = TextTokenizer(tokenizer_json)
    (batch,) = tokenizer.encode_requests([["lorem ipsum " * 500]])
    assert batch.input_ids.shape == (1, 256)
    assert int(batch.attention_mask.sum()) == 256
    assert batch.input_ids[0, -1] == tokenizer._tokenizer.token_to_id("[SEP]")


def test_missing_tokenizer_file_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="build-models"):
        TextTokenizer(tmp_path / "tokenizer.json")


def test_tokenizer_threads_are_set_before_the_pool_exists(monkeypatch):
    from python_backend.tokenization import configure_threads

    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    monkeypatch.delenv("TOKENIZERS_PARALLELISM", raising=False)
    configure_threads(1)
    assert os.environ["RAYON_NUM_THREADS"] == "1"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "false"  # no pool at all
    configure_threads(4)
    assert os.environ["RAYON_NUM_THREADS"] == "4"
    assert os.environ["TOKENIZERS_PARALLELISM"] == "true"
    with pytest.raises(ValueError, match="at least 1"):
        configure_threads(0)


def test_padding_fills_each_row_with_its_own_tokens(tokenizer_json):
    tokenizer = TextTokenizer(tokenizer_json)
    batch = tokenizer.pad([[101, 7, 102], [101, 102], [101, 5, 6, 7, 102]])
    assert batch.input_ids.shape == (3, 16) and batch.input_ids.dtype == np.int64
    assert batch.input_ids[0, :3].tolist() == [101, 7, 102]
    assert batch.input_ids[2, :5].tolist() == [101, 5, 6, 7, 102]
    assert batch.attention_mask.sum(axis=1).tolist() == [3, 2, 5]
    assert (batch.input_ids[batch.attention_mask == 0] == tokenizer.pad_id).all()


def _texts(*texts: str) -> np.ndarray:
    return np.array([text.encode() for text in texts], dtype=object).reshape(-1, 1)


def test_a_request_over_the_token_budget_fails_alone_naming_the_limit(tokenizer_json):
    model = TokenizerModel(TextTokenizer(tokenizer_json), OUTPUT_DTYPES, max_request_tokens=64)
    at_budget = _texts(*["a few words"] * 4)  # 4 texts in the 16-token bucket: 64 tokens
    long = "lorem ipsum " * 500
    over_by_length = _texts("hi", long)  # the short text is padded to the long one's 256
    over_by_rows = _texts(*["a few words"] * 5)
    results = model.run([at_budget, over_by_length, over_by_rows, _texts("hi")])
    assert results[0]["input_ids"].shape == (4, 16)
    assert results[3]["input_ids"].shape == (1, 16)
    for refused, tokens in ((results[1], "2 texts x 256 tokens = 512"), (results[2], "= 80")):
        assert isinstance(refused, InvalidInputError)
        assert tokens in str(refused) and "limit for one request is 64 tokens" in str(refused)
