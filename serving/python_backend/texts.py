"""Turning a TYPE_STRING tensor into Python strings, with the limits the server enforces."""

from __future__ import annotations

import numpy as np

from python_backend.errors import InvalidInputError

# A text longer than this is refused rather than tokenized: the encoder reads only the first
# 256 tokens (about 1-2 KB of English), so megabytes of text are a client bug or abuse, and
# tokenizing them would stall every request batched with it. Configurable per model.
DEFAULT_MAX_TEXT_BYTES = 65536
# All texts of one request together: the tokenizer reads every byte before it truncates, so a
# request's tokenizing cost grows with its bytes (64 texts of 64 KiB took 1.2 s of CPU, one
# short text 0.04 ms), and one instance tokenizes for every client. 256 KiB holds 64 texts of
# 4 KiB, more than the 256 tokens the encoder reads of each. Configurable per model.
DEFAULT_MAX_REQUEST_TEXT_BYTES = 262144


def decode_texts(
    tensor: np.ndarray,
    input_name: str,
    max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
    max_request_text_bytes: int = DEFAULT_MAX_REQUEST_TEXT_BYTES,
) -> list[str]:
    """Flatten a `[batch]` or `[batch, 1]` BYTES tensor into a list of UTF-8 strings."""
    if tensor.ndim == 2 and tensor.shape[1] != 1:
        raise InvalidInputError(
            f"input '{input_name}' must have shape [batch] or [batch, 1] (one text per row), "
            f"got {list(tensor.shape)}"
        )
    if tensor.ndim not in (1, 2):
        raise InvalidInputError(
            f"input '{input_name}' must have shape [batch] or [batch, 1], got {list(tensor.shape)}"
        )
    if tensor.size == 0:
        raise InvalidInputError(f"input '{input_name}' holds no text (empty batch)")
    texts = []
    request_bytes = 0
    for row, item in enumerate(tensor.reshape(-1)):
        raw = item if isinstance(item, bytes | bytearray) else str(item).encode()
        request_bytes += len(raw)
        if len(raw) > max_text_bytes:
            raise InvalidInputError(
                f"input '{input_name}' row {row} is {len(raw)} bytes; the limit is "
                f"{max_text_bytes} bytes (the model reads only the first 256 tokens: "
                "send a shorter text or split it)"
            )
        if request_bytes > max_request_text_bytes:
            raise InvalidInputError(
                f"input '{input_name}' holds more than {max_request_text_bytes} bytes of text "
                f"in its first {row + 1} rows, the limit for one request; send the texts in "
                "several requests"
            )
        try:
            texts.append(bytes(raw).decode("utf-8"))
        except UnicodeDecodeError as error:
            raise InvalidInputError(
                f"input '{input_name}' row {row} is not valid UTF-8 "
                f"(byte {error.start}: {error.reason}); send texts encoded as UTF-8"
            ) from None
    return texts
