"""An inference request built from a model's config, and the check that a version answers it."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tritonclient.grpc import model_config_pb2

from inference_tools.publishing.endpoints import TritonEndpoint

SMOKE_TEXT = "inference-tools publish smoke test"


class InferenceCheckError(RuntimeError):
    pass


def _datatype(data_type: int) -> str:
    """Config enum (TYPE_FP32) to the inference protocol's name (FP32; BYTES for strings)."""
    name = model_config_pb2.DataType.Name(data_type).removeprefix("TYPE_")
    return "BYTES" if name == "STRING" else name


def sample_request(config: Any) -> dict[str, Any]:
    """A KServe v2 JSON request that every input of `config` accepts.

    Batching models get a batch of one; dynamic dimensions get size 1. Strings get a short
    sentence, numbers get zeros (valid token ids, valid masks, valid features).
    """
    inputs = []
    for entry in config.input:
        if entry.optional:
            continue
        dims = [1 if d < 0 else int(d) for d in entry.dims]
        shape = ([1] if config.max_batch_size > 0 else []) + dims
        count = math.prod(shape)
        datatype = _datatype(entry.data_type)
        if datatype == "BYTES":
            data: list[Any] = [SMOKE_TEXT] * count
        elif datatype == "BOOL":
            data = [False] * count
        else:
            data = [0] * count
        inputs.append({"name": entry.name, "shape": shape, "datatype": datatype, "data": data})
    return {"inputs": inputs, "outputs": [{"name": o.name} for o in config.output]}


def read_sample_request(path: Path, config: Any) -> dict[str, Any]:
    """A user's request file in the v2 JSON format; outputs default to all of the config's."""
    request = json.loads(path.read_text())
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list):
        raise InferenceCheckError(f"{path}: expected a JSON object with an 'inputs' list")
    request.setdefault("outputs", [{"name": o.name} for o in config.output])
    return request


def check_inference(
    endpoint: TritonEndpoint,
    name: str,
    version: int,
    request: dict[str, Any],
    timeout_s: float = 60.0,
) -> dict[str, Any]:
    """Send `request` to exactly `version`; raise unless it answers with every asked output."""
    response = endpoint.request(
        "POST",
        f"/v2/models/{name}/versions/{version}/infer",
        json.dumps(request).encode(),
        timeout_s=timeout_s,
    )
    if not response.ok:
        raise InferenceCheckError(
            f"{endpoint.label}: inference on {name} version {version} failed "
            f"(HTTP {response.status}): {response.error_text()}"
        )
    payload = response.json()
    answered = {output["name"] for output in payload.get("outputs", [])}
    wanted = {output["name"] for output in request.get("outputs", [])}
    if not wanted <= answered:
        raise InferenceCheckError(
            f"{endpoint.label}: {name} version {version} answered without outputs "
            f"{sorted(wanted - answered)}"
        )
    if str(payload.get("model_version")) != str(version):
        raise InferenceCheckError(
            f"{endpoint.label}: asked {name} version {version}, answered by version "
            f"{payload.get('model_version')}"
        )
    return payload
