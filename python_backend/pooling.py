"""Sentence embeddings from token states: attention-masked mean, then L2 normalisation.

This is what sentence-transformers' Pooling(mean) + Normalize modules compute.
"""

from __future__ import annotations

import numpy as np

from python_backend.errors import InvalidInputError


def mean_pool_normalize(last_hidden_state: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """[batch, seq, hidden] states and a [batch, seq] mask -> [batch, hidden] unit vectors."""
    if last_hidden_state.ndim != 3 or attention_mask.ndim != 2:
        raise InvalidInputError(
            "expected last_hidden_state [batch, seq, hidden] and attention_mask [batch, seq], "
            f"got {list(last_hidden_state.shape)} and {list(attention_mask.shape)}"
        )
    if last_hidden_state.shape[:2] != attention_mask.shape:
        raise InvalidInputError(
            f"attention_mask {list(attention_mask.shape)} does not match the first two "
            f"dimensions of last_hidden_state {list(last_hidden_state.shape)}"
        )
    mask = attention_mask.astype(np.float32)[:, :, None]
    summed = (last_hidden_state.astype(np.float32) * mask).sum(axis=1)
    # sentence-transformers clamps the token count the same way: a fully masked row gives zeros.
    counts = np.clip(mask.sum(axis=1), 1e-9, None)
    mean = summed / counts
    norms = np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)
    return (mean / norms).astype(np.float32)
