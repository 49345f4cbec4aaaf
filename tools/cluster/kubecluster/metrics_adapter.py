"""prometheus-adapter, built from its pinned release, serving `custom.metrics.k8s.io` to the
HorizontalPodAutoscaler controller through the API server's aggregator.

It runs as a host process with a kubeconfig, not as a pod: the pod runner runs only the serving
image, and the adapter's image is not that. Everything else is as a cluster has it: the adapter
acts as its own ServiceAccount (a TokenRequest's token in its kubeconfig) with the RBAC that
prometheus-adapter's own deployment grants, it checks the aggregator's front-proxy certificate
and its callers' permissions (delegated authentication and authorization, as every extension
API server does), and the APIServices point at a Service in `monitoring` whose EndpointSlice
names the adapter's address on the pod bridge, so the aggregator reaches it through the
Service's ClusterIP and kube-proxy like any in-cluster server. Its rules are the ones
`inference-tools autoscaling adapter-values` renders for the overlay.
"""

from __future__ import annotations

import base64
import shutil
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from kubecluster import processes
from kubecluster.build import ModuleTool, ensure_tool
from kubecluster.kubeapi import ApiError, KubeApi, write_service_account_kubeconfig
from kubecluster.layout import BRIDGE_ADDRESS, GO_MODULE_DIR, ClusterLayout
from kubecluster.pki import Pki, ensure_service_cert

NAMESPACE = "monitoring"
NAME = "prometheus-adapter"
ADAPTER_TOOL = ModuleTool(
    NAME, "sigs.k8s.io/prometheus-adapter", "sigs.k8s.io/prometheus-adapter/cmd/adapter",
    GO_MODULE_DIR / "prometheus-adapter",
)  # fmt: skip
GROUP = "custom.metrics.k8s.io"
# The HPA controller's client asks discovery for the preferred version (v1beta2); v1beta1 is
# what `kubectl get --raw /apis/custom.metrics.k8s.io/v1beta1/...` in the docs reads.
VERSIONS = (("v1beta2", 200), ("v1beta1", 100))
# The adapter's token: long enough for a working day on `make cluster`.
TOKEN_SECONDS = 86400
START_TIMEOUT_SECONDS = 120.0
# kube-prometheus's prometheus-adapter ClusterRole: what the adapter reads to map series to
# objects and to list the pods an HPA selects.
RESOURCE_READER_RULES = [
    {"apiGroups": [""], "resources": ["nodes", "namespaces", "pods", "services"],
     "verbs": ["get", "list", "watch"]},
]  # fmt: skip


def adapter_version() -> str:
    return ADAPTER_TOOL.version()


def ensure_adapter(layout: ClusterLayout) -> Path:
    return ensure_tool(layout, ADAPTER_TOOL)


def adapter_config(helm_values: dict[str, Any]) -> dict[str, Any]:
    """The adapter's --config from the chart values `adapter-values` prints: the chart writes
    `rules.custom` into the configuration's `rules:` (the metrics of objects)."""
    return {"rules": list(helm_values["rules"]["custom"])}


def resources(ca_bundle: bytes, port: int) -> list[dict[str, Any]]:
    """The namespace, the adapter's identity and RBAC, its Service and EndpointSlice, and the
    APIServices that route custom.metrics.k8s.io to it."""
    labels = {"app.kubernetes.io/name": NAME, "app.kubernetes.io/instance": "e2e"}
    subject = [{"kind": "ServiceAccount", "name": NAME, "namespace": NAMESPACE}]

    def binding(kind: str, name: str, role_kind: str, role: str, namespace: str | None = None):
        meta = {"name": name, "labels": labels, **({"namespace": namespace} if namespace else {})}
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                            "name": role},
                "subjects": subject}  # fmt: skip

    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": f"{NAME}-resource-reader", "labels": labels},
         "rules": RESOURCE_READER_RULES},
        binding("ClusterRoleBinding", f"{NAME}-resource-reader", "ClusterRole",
                f"{NAME}-resource-reader"),
        # Delegated authentication and authorization: TokenReviews, SubjectAccessReviews.
        binding("ClusterRoleBinding", f"{NAME}:system:auth-delegator", "ClusterRole",
                "system:auth-delegator"),
        # The front proxy's CA and allowed names, which the API server publishes there.
        binding("RoleBinding", f"{NAME}-auth-reader", "Role",
                "extension-apiserver-authentication-reader", "kube-system"),
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": labels},
         # No selector: the endpoint is a host process, listed by the EndpointSlice below.
         "spec": {"ports": [{"name": "https", "port": 443, "targetPort": port,
                             "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": NAME, "namespace": NAMESPACE,
                      "labels": {**labels, "kubernetes.io/service-name": NAME,
                                 "endpointslice.kubernetes.io/managed-by": "kubecluster"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [BRIDGE_ADDRESS], "conditions": {"ready": True}}],
         "ports": [{"name": "https", "port": port, "protocol": "TCP"}]},
        *({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
           "metadata": {"name": f"{version}.{GROUP}", "labels": labels},
           "spec": {"group": GROUP, "version": version,
                    "service": {"name": NAME, "namespace": NAMESPACE, "port": 443},
                    "caBundle": base64.b64encode(ca_bundle).decode(),
                    "groupPriorityMinimum": 100, "versionPriority": priority}}
          for version, priority in VERSIONS),
    ]  # fmt: skip


def _folder(layout: ClusterLayout) -> Path:
    return layout.root / NAME


def _free_bridge_port() -> int:
    with socket.socket() as probe:
        probe.bind((BRIDGE_ADDRESS, 0))
        return int(probe.getsockname()[1])


def start(layout: ClusterLayout, api: KubeApi, apply: Any, prometheus_url: str,
          helm_values: dict[str, Any], verbosity: int = 2) -> None:  # fmt: skip
    """Build (once), register and start the adapter against `prometheus_url`.

    `apply(documents)` applies objects server-side (the caller's kubectl). At `verbosity` 3 the
    adapter's API server logs every request it answers (time, URI, caller, latency): the moments
    the HPA controller asked for its metrics."""
    if processes.running_pid(layout.pid_file(NAME)) is not None:
        return
    binary = ensure_adapter(layout)
    pki = Pki(layout.pki)
    cert, key = ensure_service_cert(pki, NAMESPACE, NAME)
    port = _free_bridge_port()
    apply(resources(pki.ca_cert.read_bytes(), port))
    folder = _folder(layout)
    folder.mkdir(parents=True, exist_ok=True)
    config_file = folder / "config.yaml"
    config_file.write_text(yaml.safe_dump(adapter_config(helm_values), sort_keys=False))
    kubeconfig = folder / "kubeconfig"
    write_service_account_kubeconfig(api, kubeconfig, pki.ca_cert, NAMESPACE, NAME, TOKEN_SECONDS)
    processes.start_detached(
        [str(binary),
         f"--lister-kubeconfig={kubeconfig}",
         f"--authentication-kubeconfig={kubeconfig}",
         f"--authorization-kubeconfig={kubeconfig}",
         f"--bind-address={BRIDGE_ADDRESS}", f"--secure-port={port}",
         f"--tls-cert-file={cert}", f"--tls-private-key-file={key}",
         f"--prometheus-url={prometheus_url}",
         f"--config={config_file}",
         # The chart's default: how often the adapter lists the series it can serve.
         "--metrics-relist-interval=1m",
         f"--v={verbosity}"],
        layout.pid_file(NAME), layout.log_file(NAME),
    )  # fmt: skip


def available(api: KubeApi) -> dict[str, str]:
    """Each APIService's Available condition: 'True', or the reason it is not."""
    found = {}
    for version, _ in VERSIONS:
        service = api.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{version}.{GROUP}")
        condition = next((c for c in service.get("status", {}).get("conditions", [])
                          if c["type"] == "Available"), {})  # fmt: skip
        status = condition.get("status", "Unknown")
        found[version] = (
            "True"
            if status == "True"
            else f"{condition.get('reason')}: " + str(condition.get("message", ""))
        )
    return found


def wait_available(layout: ClusterLayout, api: KubeApi) -> float:
    """Seconds until every APIService is Available (the aggregator reached the adapter)."""
    started = time.monotonic()
    last: dict[str, str] = {}
    while time.monotonic() - started < START_TIMEOUT_SECONDS:
        if processes.running_pid(layout.pid_file(NAME)) is None:
            raise RuntimeError(f"prometheus-adapter exited; see {layout.log_file(NAME)}")
        last = available(api)
        if all(value == "True" for value in last.values()):
            return time.monotonic() - started
        time.sleep(0.5)
    raise TimeoutError(f"APIServices not Available: {last}; see {layout.log_file(NAME)}")


def unregister(api: KubeApi) -> None:
    """Remove the APIServices: once the adapter is gone, discovery would otherwise report the
    group as unavailable to every client."""
    for version, _ in VERSIONS:
        try:
            api.delete(f"/apis/apiregistration.k8s.io/v1/apiservices/{version}.{GROUP}")
        except ApiError as error:
            if error.status != 404:
                raise


def stop(layout: ClusterLayout) -> None:
    processes.stop(layout.pid_file(NAME), 10.0)
    shutil.rmtree(_folder(layout), ignore_errors=True)
