"""The `pooler` model: token states and mask in, one unit-length embedding per text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from python_backend.contract import ATTENTION_MASK, LAST_HIDDEN_STATE
from python_backend.errors import InvalidInputError
from python_backend.pooling import mean_pool_normalize

HIDDEN_STATE_INPUT = LAST_HIDDEN_STATE
MASK_INPUT = ATTENTION_MASK


MAX_SEQUENCE_LENGTH_PARAMETER = "max_sequence_length"


class PoolerModel:
    def __init__(
        self, output_dtypes: Mapping[str, np.dtype], max_sequence_length: int | None = None
    ) -> None:
        if len(output_dtypes) != 1:
            raise ValueError(
                f"the pooler has exactly one output, config lists {list(output_dtypes)}"
            )
        ((self.output_name, self.output_dtype),) = output_dtypes.items()
        # The pooler is callable on its own too: a sequence longer than the encoder ever emits
        # is refused before the float copies pooling makes of it.
        self.max_sequence_length = max_sequence_length

    @classmethod
    def from_parameters(
        cls, output_dtypes: Mapping[str, np.dtype], parameters: Mapping[str, str]
    ) -> PoolerModel:
        limit = parameters.get(MAX_SEQUENCE_LENGTH_PARAMETER)
        return cls(output_dtypes, int(limit) if limit else None)

    def check_request(self, hidden_states: np.ndarray) -> None:
        limit = self.max_sequence_length
        if limit is not None and hidden_states.ndim >= 2 and hidden_states.shape[1] > limit:
            raise InvalidInputError(
                f"{HIDDEN_STATE_INPUT} has {hidden_states.shape[1]} positions in shape "
                f"{list(hidden_states.shape)}; the limit is {limit} "
                f"(parameter {MAX_SEQUENCE_LENGTH_PARAMETER})"
            )

    def run(
        self, requests: Sequence[tuple[np.ndarray, np.ndarray]]
    ) -> list[dict[str, np.ndarray] | Exception]:
        # Pooling costs microseconds next to the encoder; per-request numpy is plenty here.
        results: list[dict[str, np.ndarray] | Exception] = []
        for hidden_states, attention_mask in requests:
            try:
                self.check_request(hidden_states)
                pooled = mean_pool_normalize(hidden_states, attention_mask)
            except InvalidInputError as error:
                results.append(error)
                continue
            results.append({self.output_name: pooled.astype(self.output_dtype)})
        return results
