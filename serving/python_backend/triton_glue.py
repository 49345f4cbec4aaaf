"""What every Python-backend `model.py` of ours does the same way: one response per request.

`triton_python_backend_utils` exists only inside Triton's stub process, so it is imported when
these functions run, not when this module is imported; unit tests put a fake in its place.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from python_backend.errors import InvalidInputError


def _pb_utils() -> Any:
    import triton_python_backend_utils as pb_utils

    return pb_utils


def error_response(error: Exception) -> Any:
    """Client errors become INVALID_ARG (HTTP 400); anything else is INTERNAL (HTTP 500)."""
    pb_utils = _pb_utils()
    if isinstance(error, InvalidInputError):
        code = pb_utils.TritonError.INVALID_ARG
    else:
        code = pb_utils.TritonError.INTERNAL
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(str(error), code))


def tensors_response(tensors: Mapping[str, np.ndarray]) -> Any:
    pb_utils = _pb_utils()
    return pb_utils.InferenceResponse(
        [pb_utils.Tensor(name, value) for name, value in tensors.items()]
    )


def respond(results: Sequence[Mapping[str, np.ndarray] | Exception]) -> list[Any]:
    return [error_response(r) if isinstance(r, Exception) else tensors_response(r) for r in results]


def output_dtypes(model_config_json: str) -> dict[str, np.dtype]:
    """Numpy dtypes of the outputs, read from the model config rather than repeated in code."""
    pb_utils = _pb_utils()
    config = json.loads(model_config_json)
    return {
        output["name"]: np.dtype(pb_utils.triton_string_to_numpy(output["data_type"]))
        for output in config.get("output", [])
    }


def string_parameters(model_config_json: str) -> dict[str, str]:
    """The config's `parameters { key: ... value { string_value: ... } }` as a plain dict."""
    config = json.loads(model_config_json)
    return {
        key: str(value.get("string_value", ""))
        for key, value in config.get("parameters", {}).items()
    }
