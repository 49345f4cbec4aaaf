import numpy as np
import pytest

from python_backend.errors import InvalidInputError
from python_backend.pooling import mean_pool_normalize


def test_padding_positions_do_not_change_the_embedding():
    rng = np.random.default_rng(0)
    states = rng.normal(size=(1, 3, 8)).astype(np.float32)
    padded = np.concatenate([states, rng.normal(size=(1, 5, 8)).astype(np.float32)], axis=1)
    mask = np.array([[1, 1, 1]])
    padded_mask = np.array([[1, 1, 1, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(
        mean_pool_normalize(states, mask), mean_pool_normalize(padded, padded_mask), rtol=1e-6
    )


def test_output_is_unit_length_mean_direction():
    states = np.array([[[3.0, 0.0], [1.0, 0.0], [100.0, 100.0]]], dtype=np.float32)
    pooled = mean_pool_normalize(states, np.array([[1, 1, 0]]))
    np.testing.assert_allclose(pooled, [[1.0, 0.0]], atol=1e-7)
    assert pooled.dtype == np.float32


def test_fully_masked_row_gives_zeros_not_nan():
    pooled = mean_pool_normalize(np.ones((1, 2, 4), np.float32), np.zeros((1, 2), np.int64))
    assert np.all(np.isfinite(pooled)) and not pooled.any()


def test_mismatched_shapes_are_client_errors():
    with pytest.raises(InvalidInputError, match="does not match"):
        mean_pool_normalize(np.ones((2, 3, 4), np.float32), np.ones((2, 4), np.int64))
