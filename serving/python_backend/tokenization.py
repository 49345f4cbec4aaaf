"""WordPiece tokenization for the encoder, padded to a few fixed sequence lengths.

Triton's dynamic batcher merges only requests whose tensors have the same shape. Padding each
request to its own length would leave almost nothing to merge; padding all to 256 would spend
most of the encoder's work on padding. Rounding the length up to one of a few buckets keeps
both costs small: under load, requests fall into a handful of shapes that batch together.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from python_backend.contract import ATTENTION_MASK, INPUT_IDS

# sentence-transformers' max_seq_length for all-MiniLM-L6-v2, special tokens included.
DEFAULT_MAX_TOKENS = 256
DEFAULT_BUCKETS = (16, 32, 64, 128, 256)
# Padded tokens (texts x bucket) of one request. The encoder's cost grows with them (one CPU
# thread: about 0.3-0.4 ms per token at the full length), and an execution cannot be
# interrupted, so this bounds how long any request waits behind another client's. Sized for
# the base pod's CPU encoder (the shipped config says so, with the measurements).
DEFAULT_MAX_REQUEST_TOKENS = 768
# Threads of one tokenizer instance's `encode_batch` (the `tokenizers` library's Rayon pool).
DEFAULT_THREADS = 1


def configure_threads(threads: int) -> None:
    """Size the Rust tokenizer's thread pool; call before the first `encode_batch`.

    `tokenizers` runs `encode_batch` on Rayon's global pool, which is created once per process
    with RAYON_NUM_THREADS threads (every CPU of the machine when unset, not the pod's limit).
    One thread turns parallelism off (TOKENIZERS_PARALLELISM=false): no pool, no hand-off
    between threads, and no threads competing with the encoder for the pod's cores.
    """
    if threads < 1:
        raise ValueError(f"tokenizer threads must be at least 1, got {threads}")
    os.environ["RAYON_NUM_THREADS"] = str(threads)
    os.environ["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"


def bucket_length(length: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds `length` tokens (the largest bucket caps it)."""
    for bucket in buckets:
        if length <= bucket:
            return bucket
    return buckets[-1]


def parse_buckets(spec: str, max_tokens: int) -> tuple[int, ...]:
    """'16,32,64' -> (16, 32, 64, max_tokens): sorted, positive, ending at `max_tokens`."""
    buckets = sorted({int(part) for part in spec.split(",") if part.strip()})
    if any(bucket <= 0 for bucket in buckets):
        raise ValueError(f"sequence buckets must be positive, got {spec!r}")
    buckets = [bucket for bucket in buckets if bucket < max_tokens]
    return (*buckets, max_tokens)


@dataclass(frozen=True)
class EncodedBatch:
    input_ids: np.ndarray  # int64 [batch, bucket]
    attention_mask: np.ndarray  # int64 [batch, bucket]
    # No token_type_ids: a single sentence is all type 0, and the encoder graph folds that
    # embedding in, so one tensor fewer travels through the ensemble.

    def as_dict(self) -> dict[str, np.ndarray]:
        return {INPUT_IDS: self.input_ids, ATTENTION_MASK: self.attention_mask}


class TextTokenizer:
    def __init__(
        self,
        tokenizer_json: Path,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        buckets: Sequence[int] = DEFAULT_BUCKETS,
    ) -> None:
        if not tokenizer_json.is_file():
            raise FileNotFoundError(
                f"{tokenizer_json} is missing; build the model artefacts with "
                "`inference-tools build-models`"
            )
        self._tokenizer = Tokenizer.from_file(str(tokenizer_json))
        # Truncate exactly as sentence-transformers does; padding is ours (to a bucket).
        self._tokenizer.enable_truncation(max_length=max_tokens)
        self._tokenizer.no_padding()
        self.max_tokens = max_tokens
        self.buckets = tuple(buckets)
        self.pad_id = self._tokenizer.token_to_id("[PAD]") or 0

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return [encoding.ids for encoding in self._tokenizer.encode_batch(list(texts))]

    def pad(self, token_ids: Sequence[Sequence[int]]) -> EncodedBatch:
        """Pad one request's token lists to the bucket of its longest text."""
        lengths = np.fromiter(map(len, token_ids), dtype=np.int64, count=len(token_ids))
        width = bucket_length(int(lengths.max()), self.buckets)
        real = np.arange(width) < lengths[:, None]
        input_ids = np.full((len(token_ids), width), self.pad_id, dtype=np.int64)
        # Boolean assignment fills row by row, in the order of the flattened token lists.
        input_ids[real] = np.fromiter(
            (token for ids in token_ids for token in ids), dtype=np.int64, count=int(lengths.sum())
        )
        return EncodedBatch(input_ids, real.astype(np.int64))

    def encode_requests(self, texts_per_request: Sequence[Sequence[str]]) -> list[EncodedBatch]:
        """Tokenize the texts of many requests in one call, then pad each request on its own."""
        flat = [text for texts in texts_per_request for text in texts]
        ids = self.encode(flat)
        batches, start = [], 0
        for texts in texts_per_request:
            batches.append(self.pad(ids[start : start + len(texts)]))
            start += len(texts)
        return batches
