"""Tell Triton servers to (re)load a model from the store and wait until a version serves.

Servers run with `--model-control-mode=explicit`: a load request makes Triton read the model's
config from the store again, load the versions it names beside the ones serving, and swap them
in only once loaded; a failed load leaves the serving versions untouched (Triton's model
management guide). The repository API is restricted in the cluster, so every call carries the
admin header.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pod_hooks.model_roles import ADMIN_HEADER

from inference_tools.publishing.endpoints import TritonEndpoint
from inference_tools.publishing.inference_check import InferenceCheckError, check_inference
from inference_tools.subprocesses import wait_until_ready

POLL_INTERVAL_S = 0.25


class RolloutError(RuntimeError):
    pass


@dataclass(frozen=True)
class AdminAccess:
    """The restricted-API header Triton was started with (`--http-restricted-api=...:K=V`)."""

    header: str = ADMIN_HEADER
    value: str | None = None

    def headers(self) -> dict[str, str]:
        return {self.header: self.value} if self.value else {}


def load_model(endpoint: TritonEndpoint, name: str, admin: AdminAccess, timeout_s: float) -> None:
    """POST .../load: returns once Triton finished loading, or raises with Triton's reason."""
    response = endpoint.request(
        "POST", f"/v2/repository/models/{name}/load", b"{}", admin.headers(), timeout_s
    )
    if not response.ok:
        raise RolloutError(
            f"{endpoint.label}: loading {name} failed (HTTP {response.status}): "
            f"{response.error_text()}"
        )


def unload_model(endpoint: TritonEndpoint, name: str, admin: AdminAccess) -> None:
    response = endpoint.request(
        "POST", f"/v2/repository/models/{name}/unload", b"{}", admin.headers()
    )
    if not response.ok:
        raise RolloutError(
            f"{endpoint.label}: unloading {name} failed (HTTP {response.status}): "
            f"{response.error_text()}"
        )


def version_ready(endpoint: TritonEndpoint, name: str, version: int) -> bool:
    return endpoint.request("GET", f"/v2/models/{name}/versions/{version}/ready").ok


def ready_versions(endpoint: TritonEndpoint, name: str, admin: AdminAccess) -> list[int]:
    """The model's versions in state READY, from the repository index."""
    response = endpoint.request(
        "POST", "/v2/repository/index", json.dumps({"ready": True}).encode(), admin.headers()
    )
    if not response.ok:
        raise RolloutError(
            f"{endpoint.label}: repository index failed (HTTP {response.status}): "
            f"{response.error_text()}"
        )
    return sorted(
        int(entry["version"])
        for entry in response.json() or []
        if entry.get("name") == name and entry.get("state") == "READY" and entry.get("version")
    )


def wait_until_serving(
    endpoint: TritonEndpoint,
    name: str,
    version: int,
    request: dict[str, Any],
    timeout_s: float,
) -> None:
    # No process to watch: the server is remote; only the deadline ends the wait.
    if wait_until_ready(
        lambda: version_ready(endpoint, name, version), None, timeout_s, interval_s=POLL_INTERVAL_S
    ):
        raise RolloutError(
            f"{endpoint.label}: {name} version {version} not READY after {timeout_s:.0f}s"
        )
    try:
        check_inference(endpoint, name, version, request)
    except InferenceCheckError as error:
        raise RolloutError(str(error)) from error


def switch_endpoint(
    endpoint: TritonEndpoint,
    name: str,
    version: int,
    request: dict[str, Any],
    admin: AdminAccess,
    timeout_s: float,
) -> None:
    """Reload `name` on one server and wait until `version` is READY and answers `request`."""
    load_model(endpoint, name, admin, timeout_s)
    wait_until_serving(endpoint, name, version, request, timeout_s)


def serving_table(
    endpoints: Mapping[str, TritonEndpoint], names: list[str], admin: AdminAccess
) -> list[tuple[str, str, str]]:
    """(server, model, versions READY there) for the closing summary."""
    rows = []
    for label, endpoint in endpoints.items():
        for name in names:
            try:
                versions = ", ".join(str(v) for v in ready_versions(endpoint, name, admin))
            except (RolloutError, OSError) as error:
                versions = f"unknown ({error})"
            rows.append((label, name, versions or "none"))
    return rows
