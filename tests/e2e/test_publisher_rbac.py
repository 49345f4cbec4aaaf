"""The publisher's identity on a real API server: the `publisher-rbac` component's
ServiceAccount, Role and RoleBinding let the project's own publishing code find the
Deployment's replicas and call Triton on each through the API server's pod proxy, and nothing
else: the same token is refused (403) where the Role grants nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from inference_tools.publishing.kubernetes_replicas import deployment_replicas, kubernetes_apis
from kubecluster.kubeapi import KubeApi

from tests.e2e.conftest import ADMIN_KEY, NAMESPACE, wait_for
from tests.e2e.test_readiness import pod_ready, triton_pods

pytestmark = pytest.mark.e2e


def test_publisher_reaches_each_replica_and_nothing_else(
    api: KubeApi, cpu_release: None, publisher_kubeconfig: Path
) -> None:
    from kubernetes.client.exceptions import ApiException

    wait_for("a ready Triton pod", lambda: any(pod_ready(p) for p in triton_pods(api)), 420)
    apps, core = kubernetes_apis()
    replicas = [r for r in deployment_replicas(apps, core, NAMESPACE, "triton") if r.ready]
    assert replicas
    endpoint = replicas[0].endpoint
    health = endpoint.request("GET", "/v2/health/ready")
    index = endpoint.request(
        "POST", "/v2/repository/index", body=b"{}", headers={"x-triton-admin-key": ADMIN_KEY}
    )
    without_key = endpoint.request("POST", "/v2/repository/index", body=b"{}")
    models = sorted(entry["name"] for entry in json.loads(index.body))

    refused = {}
    for what, call in (
        ("list secrets", lambda: core.list_namespaced_secret(NAMESPACE)),
        ("patch the Deployment", lambda: apps.patch_namespaced_deployment(
            "triton", NAMESPACE, {"metadata": {"annotations": {"e2e/publisher": "x"}}})),
        ("delete a pod", lambda: core.delete_namespaced_pod(replicas[0].pod, NAMESPACE)),
    ):  # fmt: skip
        try:
            call()
            refused[what] = 200
        except ApiException as error:
            refused[what] = int(error.status or 0)
    print(
        f"\npublisher ServiceAccount: {len(replicas)} ready replica(s) found; through the pod "
        f"proxy /v2/health/ready {health.status}, repository index with the admin key "
        f"{index.status} ({', '.join(models)}), without it {without_key.status}; refused: {refused}"
    )
    assert health.status == 200
    assert index.status == 200 and "text_embedding" in models
    assert without_key.status != 200
    assert set(refused.values()) == {403}
