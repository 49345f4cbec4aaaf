"""The `pooler` model: token states and mask in, one unit-length embedding per text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from python_backend.contract import ATTENTION_MASK, LAST_HIDDEN_STATE
from python_backend.errors import InvalidInputError
from python_backend.pooling import mean_pool_normalize

HIDDEN_STATE_INPUT = LAST_HIDDEN_STATE
MASK_INPUT = ATTENTION_MASK


class PoolerModel:
    def __init__(self, output_dtypes: Mapping[str, np.dtype]) -> None:
        if len(output_dtypes) != 1:
            raise ValueError(
                f"the pooler has exactly one output, config lists {list(output_dtypes)}"
            )
        ((self.output_name, self.output_dtype),) = output_dtypes.items()

    def run(
        self, requests: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> list[dict[str, np.ndarray] | Exception]:
        # Pooling costs microseconds next to the encoder; per-request numpy is plenty here.
        results: list[dict[str, np.ndarray] | Exception] = []
        for hidden_states, attention_mask in requests:
            try:
                pooled = mean_pool_normalize(hidden_states, attention_mask)
            except InvalidInputError as error:
                results.append(error)
                continue
            results.append({self.output_name: pooled.astype(self.output_dtype)})
        return results
