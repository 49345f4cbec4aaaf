"""The `tokenizer` model: TYPE_STRING texts in, padded token tensors out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from python_backend.contract import TEXT
from python_backend.errors import InvalidInputError
from python_backend.texts import (
    DEFAULT_MAX_REQUEST_TEXT_BYTES,
    DEFAULT_MAX_TEXT_BYTES,
    decode_texts,
)
from python_backend.tokenization import (
    DEFAULT_BUCKETS,
    DEFAULT_MAX_REQUEST_TOKENS,
    DEFAULT_MAX_TOKENS,
    DEFAULT_THREADS,
    EncodedBatch,
    TextTokenizer,
    configure_threads,
    parse_buckets,
)

TEXT_INPUT = TEXT
TOKENIZER_FILENAME = "tokenizer.json"


class TokenizerModel:
    def __init__(
        self,
        tokenizer: TextTokenizer,
        output_dtypes: Mapping[str, np.dtype],
        max_text_bytes: int = DEFAULT_MAX_TEXT_BYTES,
        max_request_text_bytes: int = DEFAULT_MAX_REQUEST_TEXT_BYTES,
        max_request_tokens: int = DEFAULT_MAX_REQUEST_TOKENS,
    ) -> None:
        self.tokenizer = tokenizer
        self.output_dtypes = dict(output_dtypes)
        self.max_text_bytes = max_text_bytes
        self.max_request_text_bytes = max_request_text_bytes
        self.max_request_tokens = max_request_tokens

    @classmethod
    def from_parameters(
        cls,
        version_dir: Path,
        output_dtypes: Mapping[str, np.dtype],
        parameters: Mapping[str, str],
    ) -> TokenizerModel:
        """Build from the config's `parameters` (max_tokens, sequence_buckets, max_text_bytes,
        max_request_text_bytes, max_request_tokens, tokenizer_threads)."""
        configure_threads(int(parameters.get("tokenizer_threads") or DEFAULT_THREADS))
        max_tokens = int(parameters.get("max_tokens") or DEFAULT_MAX_TOKENS)
        default_buckets = ",".join(str(b) for b in DEFAULT_BUCKETS)
        buckets = parse_buckets(parameters.get("sequence_buckets") or default_buckets, max_tokens)
        tokenizer = TextTokenizer(version_dir / TOKENIZER_FILENAME, max_tokens, buckets)
        max_text_bytes = int(parameters.get("max_text_bytes") or DEFAULT_MAX_TEXT_BYTES)
        max_request_text_bytes = int(
            parameters.get("max_request_text_bytes") or DEFAULT_MAX_REQUEST_TEXT_BYTES
        )
        max_request_tokens = int(parameters.get("max_request_tokens") or DEFAULT_MAX_REQUEST_TOKENS)
        return cls(
            tokenizer, output_dtypes, max_text_bytes, max_request_text_bytes, max_request_tokens
        )

    def run(self, text_tensors: Sequence[np.ndarray]) -> list[dict[str, np.ndarray] | Exception]:
        """Tokenize every request's texts in one tokenizer call; a bad request fails alone."""
        decoded: list[list[str] | Exception] = []
        for tensor in text_tensors:
            try:
                decoded.append(
                    decode_texts(
                        tensor, TEXT_INPUT, self.max_text_bytes, self.max_request_text_bytes
                    )
                )
            except InvalidInputError as error:
                decoded.append(error)
        valid = [texts for texts in decoded if not isinstance(texts, Exception)]
        encoded = iter(self.tokenizer.encode_requests(valid))
        results: list[dict[str, np.ndarray] | Exception] = []
        for texts in decoded:
            if isinstance(texts, Exception):
                results.append(texts)
                continue
            batch = next(encoded)
            try:
                self._check_tokens(batch)
            except InvalidInputError as error:
                results.append(error)
                continue
            tensors = batch.as_dict()
            results.append(
                {name: tensors[name].astype(dtype) for name, dtype in self.output_dtypes.items()}
            )
        return results

    def _check_tokens(self, batch: EncodedBatch) -> None:
        """Refuse a request whose padded tokens exceed `max_request_tokens`.

        The encoder's work grows with rows times padded length, and one execution cannot be
        interrupted: every request queued behind it waits for all of it. Bounding each
        request's tokens bounds that wait for everyone else.
        """
        rows, width = batch.input_ids.shape
        if rows * width > self.max_request_tokens:
            raise InvalidInputError(
                f"input '{TEXT_INPUT}' encodes to {rows} texts x {width} tokens = "
                f"{rows * width} tokens (each text padded to the request's longest, in "
                f"buckets {','.join(map(str, self.tokenizer.buckets))}); the limit for one "
                f"request is {self.max_request_tokens} tokens: send fewer texts per request, "
                "or group texts of similar length"
            )
