import numpy as np
import pytest

from python_backend.tokenization import TextTokenizer, bucket_length, parse_buckets


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
