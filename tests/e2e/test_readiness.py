"""A pod of the cpu overlay is an EndpointSlice endpoint that receives traffic only once its
readiness probe (the canary inference, triton-probe) passes, as decided by the real EndpointSlice
controller from the pod status the runner writes."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from kubecluster.kubeapi import KubeApi

from tests.e2e.conftest import NAMESPACE, Kubectl, wait_for

pytestmark = pytest.mark.e2e

SELECTOR = "app.kubernetes.io/name=triton,app.kubernetes.io/component=inference-server"
# Loading the models on a shared 2-core machine; the manifest's startup probe allows 10 minutes.
START_TIMEOUT_SECONDS = 420


def triton_pods(api: KubeApi) -> list[dict[str, Any]]:
    path = f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={quote(SELECTOR)}"
    return list(api.get(path)["items"])


def endpoints(api: KubeApi, service: str = "triton") -> dict[str, dict[str, Any]]:
    """Endpoint conditions per address, from every EndpointSlice of the Service."""
    selector = quote(f"kubernetes.io/service-name={service}")
    path = (
        f"/apis/discovery.k8s.io/v1/namespaces/{NAMESPACE}/endpointslices?labelSelector={selector}"
    )
    found: dict[str, dict[str, Any]] = {}
    for endpoint_slice in api.get(path)["items"]:
        for endpoint in endpoint_slice.get("endpoints") or []:
            for address in endpoint["addresses"]:
                found[address] = endpoint.get("conditions", {})
    return found


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def serving_pod(api: KubeApi) -> dict[str, Any] | None:
    """A Ready pod that is not being deleted (a deleted pod stays Ready while it drains)."""
    return next(
        (
            p
            for p in triton_pods(api)
            if pod_ready(p) and not p["metadata"].get("deletionTimestamp")
        ),
        None,
    )


def container_running(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return any("running" in s.get("state", {}) for s in statuses)


@dataclass
class Sample:
    at: float
    running: bool
    ready: bool
    endpoint: dict[str, Any] | None


def scale(kubectl: Kubectl, replicas: int) -> None:
    kubectl.run("scale", "deployment/triton", f"--namespace={NAMESPACE}", f"--replicas={replicas}")


def test_pod_becomes_an_endpoint_only_once_its_readiness_probe_passes(
    kubectl: Kubectl, api: KubeApi, cpu_release: None
) -> None:
    # A fresh pod, watched from its creation.
    scale(kubectl, 0)
    wait_for("the old pods to go", lambda: not triton_pods(api), timeout=120)
    scale(kubectl, 1)
    started = time.monotonic()

    def new_pod() -> dict[str, Any] | None:
        return next((p for p in triton_pods(api) if p.get("status", {}).get("podIP")), None)

    pod = wait_for("a new pod with an IP", new_pod, timeout=60)
    name, address = pod["metadata"]["name"], pod["status"]["podIP"]
    samples: list[Sample] = []
    deadline = started + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        # The slice first, then the pod: a ready endpoint then implies a Ready pod in the same
        # sample, since the controller only follows the pod's condition.
        endpoint = endpoints(api).get(address)
        current = next((p for p in triton_pods(api) if p["metadata"]["name"] == name), None)
        assert current is not None, f"pod {name} went away"
        sample = Sample(
            time.monotonic() - started, container_running(current), pod_ready(current), endpoint
        )
        samples.append(sample)
        if sample.endpoint and sample.endpoint.get("ready"):
            break
        time.sleep(0.25)
    running_at = next((s.at for s in samples if s.running), None)
    ready_at = next((s.at for s in samples if s.ready), None)
    endpoint_ready_at = next(
        (s.at for s in samples if s.endpoint and s.endpoint.get("ready")), None
    )
    listed_not_ready = [
        s for s in samples if s.endpoint is not None and not s.endpoint.get("ready")
    ]
    assert running_at is not None and ready_at is not None and endpoint_ready_at is not None
    print(
        f"\nreadiness of {name} at {address}, seconds after scale-up: container running "
        f"{running_at:.1f}, pod Ready {ready_at:.1f}, EndpointSlice endpoint ready "
        f"{endpoint_ready_at:.1f}; listed not ready in {len(listed_not_ready)} of {len(samples)} "
        "samples before that"
    )
    # While the container ran but its probe had not passed, the endpoint was never ready.
    assert all(not (s.endpoint or {}).get("ready") for s in samples if not s.ready)
    assert ready_at > running_at
    assert endpoint_ready_at >= ready_at
