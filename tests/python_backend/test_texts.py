import numpy as np
import pytest

from python_backend.errors import InvalidInputError
from python_backend.texts import decode_texts


def test_decodes_batch_of_utf8_rows_in_either_layout():
    flat = np.array(["héllo".encode(), "世界".encode()], dtype=object)
    assert decode_texts(flat, "TEXT") == ["héllo", "世界"]
    assert decode_texts(flat.reshape(2, 1), "TEXT") == ["héllo", "世界"]


def test_non_utf8_row_is_named_in_the_error():
    tensor = np.array([b"fine", b"\xff\xfebroken"], dtype=object).reshape(2, 1)
    with pytest.raises(InvalidInputError, match=r"'TEXT' row 1 is not valid UTF-8"):
        decode_texts(tensor, "TEXT")


def test_oversized_text_is_refused_with_the_limit():
    tensor = np.array([b"a" * 101], dtype=object)
    with pytest.raises(InvalidInputError, match=r"101 bytes; the limit is 100 bytes"):
        decode_texts(tensor, "TEXT", max_text_bytes=100)


def test_empty_batch_and_wide_rows_are_refused():
    with pytest.raises(InvalidInputError, match="empty batch"):
        decode_texts(np.array([], dtype=object).reshape(0, 1), "TEXT")
    with pytest.raises(InvalidInputError, match=r"shape \[batch\] or \[batch, 1\]"):
        decode_texts(np.array([[b"a", b"b"]], dtype=object), "TEXT")


def test_a_request_over_its_text_bytes_is_refused_naming_the_limit():
    fits = np.array([b"a" * 50, b"b" * 50], dtype=object)
    assert decode_texts(fits, "TEXT", max_text_bytes=60, max_request_text_bytes=100) == [
        "a" * 50,
        "b" * 50,
    ]
    over = np.array([b"a" * 50, b"b" * 50, b"c"], dtype=object)
    with pytest.raises(InvalidInputError, match=r"more than 100 bytes of text in its first 3 rows"):
        decode_texts(over, "TEXT", max_text_bytes=60, max_request_text_bytes=100)
