"""An inference request built from a model's config, and the check that a version answers it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pod_hooks.model_roles import ModelRoles

from inference_tools.model_config import config_as_dict
from inference_tools.publishing.endpoints import TritonEndpoint


class InferenceCheckError(RuntimeError):
    pass


def sample_request(config: Any) -> dict[str, Any]:
    """A KServe v2 JSON request that every input of `config` accepts: the canary the probes
    send (model_roles), batch one, dynamic dimensions 1, zeros or a short text."""
    name = config.name or "model"
    request = ModelRoles({name: config_as_dict(config)}).canary_request(name)
    return {**request, "outputs": [{"name": o.name} for o in config.output]}


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
