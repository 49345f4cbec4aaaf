"""KEDA on `make cluster`: its operator, metrics API server and admission webhooks, built from
the pinned release (tools/cluster/keda/go.mod), deciding the ScaledObjects of the keda overlays
with the real HorizontalPodAutoscaler controller.

The three run as host processes with a kubeconfig, as prometheus-adapter does (metrics_adapter.py
says why: the pod runner runs only the serving image). What a cluster gives KEDA's pods is
supplied instead, and nothing else changes:

- Identity: the `keda-operator` ServiceAccount (a TokenRequest's token in their kubeconfig) with
  the RBAC of the release's own config/ (all three run as that account there too).
- Registration: the release's Services, APIService `v1beta1.external.metrics.k8s.io` and
  ValidatingWebhookConfiguration `keda-admission`, unchanged but for two things: each Service
  has no selector and an EndpointSlice naming the process's port on the pod bridge (so the
  aggregator and the webhook client reach it through the ClusterIP and kube-proxy, as in a
  cluster), and the caBundle, of a CA made here (KEDA's `--enable-cert-rotation` makes its own
  the same way and patches it in; it stays off, the certificates being given).
- Names: the metrics server dials the operator's gRPC service at its default address
  `keda-operator.keda.svc.cluster.local:9666`, and the triggers query
  `prometheus-operated.monitoring.svc:9090`; `make cluster` has no cluster DNS, so each process
  gets a private /etc/hosts naming those Services' ClusterIPs (host_names.py), and the overlay's
  ScaledObject is applied as rendered.
- Certificates: one certificate for the three Services' names, serving and client, in the
  layout KEDA mounts from its Secret (ca.crt, tls.crt, tls.key): the gRPC link between the
  operator and the metrics server is mutual TLS on it.
"""

from __future__ import annotations

import base64
import copy
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from kubecluster import host_names, processes
from kubecluster.build import ModuleTool, ensure_tool
from kubecluster.crds import module_dir
from kubecluster.kubeapi import ApiError, KubeApi, write_service_account_kubeconfig
from kubecluster.layout import BRIDGE_ADDRESS, GO_MODULE_DIR, ClusterLayout
from kubecluster.pki import Pki, ensure_own_ca_cert

MODULE = "github.com/kedacore/keda/v2"
FOLDER = GO_MODULE_DIR / "keda"
NAMESPACE = "keda"
SERVICE_ACCOUNT = "keda-operator"
OPERATOR = "keda-operator"
METRICS_SERVER = "keda-metrics-apiserver"
WEBHOOKS = "keda-admission-webhooks"
COMPONENTS = (OPERATOR, METRICS_SERVER, WEBHOOKS)
# The binaries are named after the release's own (keda, keda-adapter, keda-admission-webhooks).
TOOLS = {
    OPERATOR: ModuleTool("keda-operator", MODULE, f"{MODULE}/cmd/operator", FOLDER),
    METRICS_SERVER: ModuleTool("keda-adapter", MODULE, f"{MODULE}/cmd/adapter", FOLDER),
    WEBHOOKS: ModuleTool("keda-webhooks", MODULE, f"{MODULE}/cmd/webhooks", FOLDER),
}
API_SERVICE = "v1beta1.external.metrics.k8s.io"
WEBHOOK_CONFIGURATION = "keda-admission"
# Each Service's port the other side uses, by its name in the release's config/.
SERVED_PORTS = {OPERATOR: "metricsservice", METRICS_SERVER: "https", WEBHOOKS: "https"}
# The Service the Prometheus Operator creates for every Prometheus it runs; the triggers name it.
PROMETHEUS_SERVICE = ("monitoring", "prometheus-operated", 9090)
# The release's manifests (paths in its module) that make up what the three run as.
RBAC_FILES = (
    "config/general/namespace.yaml",
    "config/service_account/service_account.yaml",
    "config/rbac/role.yaml",
    "config/rbac/role_binding.yaml",
    "config/metrics-server/role.yaml",
    "config/metrics-server/role_binding.yaml",
)
SERVICE_FILES = {
    OPERATOR: "config/manager/service.yaml",
    METRICS_SERVER: "config/metrics-server/service.yaml",
    WEBHOOKS: "config/webhooks/service.yaml",
}
API_SERVICE_FILE = "config/metrics-server/api_service.yaml"
WEBHOOKS_FILE = "config/webhooks/validation_webhooks.yaml"
TOKEN_SECONDS = 86400
START_TIMEOUT_SECONDS = 120.0
LOOPBACK = "127.0.0.1"
MANAGED_BY = "kubecluster"


def version() -> str:
    return TOOLS[OPERATOR].version()


def version_ldflags() -> str:
    """What KEDA's Makefile stamps: the release it reports at start and in its metrics."""
    return f"-X={MODULE}/version.Version={version()}"


def ensure_binaries(layout: ClusterLayout) -> dict[str, Path]:
    """The three programs, each built once per release (the operator first: the other two link
    mostly from its build cache)."""
    stamp = version_ldflags()
    return {name: ensure_tool(layout, tool, ldflags=stamp) for name, tool in TOOLS.items()}


def release_dir() -> Path:
    return module_dir(f"{MODULE}@{version()}")


def crds(release: Path) -> list[Path]:
    """Every CRD of the release (ScaledObject, ScaledJob, the TriggerAuthentications and the
    CloudEventSources): the operator and the webhooks watch them all from the start."""
    return sorted((release / "config" / "crd" / "bases").glob("*.yaml"))


def load(release: Path, path: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((release / path).read_text()) if d]


def routed_to_host(service: dict[str, Any], port_name: str, host_port: int,
                   address: str = BRIDGE_ADDRESS) -> list[dict[str, Any]]:  # fmt: skip
    """A release's Service as a host process serves it: no selector, only the named port (the
    others are metrics endpoints nothing here scrapes), and an EndpointSlice naming the
    process's address and port, so the ClusterIP routes to it."""
    routed = copy.deepcopy(service)
    routed["spec"].pop("selector", None)
    port = next(p for p in routed["spec"]["ports"] if p["name"] == port_name)
    port = {**port, "targetPort": host_port, "protocol": port.get("protocol", "TCP")}
    routed["spec"]["ports"] = [port]
    meta = routed["metadata"]
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"],
                     "labels": {**meta.get("labels", {}),
                                "kubernetes.io/service-name": meta["name"],
                                "endpointslice.kubernetes.io/managed-by": MANAGED_BY}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": port_name, "port": host_port, "protocol": port["protocol"]}],
    }  # fmt: skip
    return [routed, endpoint_slice]


def with_ca_bundle(document: dict[str, Any], ca_bundle: bytes) -> dict[str, Any]:
    """The release's APIService or ValidatingWebhookConfiguration with the CA that signed the
    servers' certificate: what its certificate manager would patch in."""
    encoded = base64.b64encode(ca_bundle).decode()
    patched = copy.deepcopy(document)
    if patched["kind"] == "APIService":
        patched["spec"]["caBundle"] = encoded
    elif patched["kind"] == "ValidatingWebhookConfiguration":
        for webhook in patched["webhooks"]:
            webhook["clientConfig"]["caBundle"] = encoded
    else:
        raise ValueError(f"no caBundle in a {patched['kind']}")
    return patched


def prometheus_service(host_port: int, address: str = BRIDGE_ADDRESS) -> list[dict[str, Any]]:
    """`prometheus-operated` in `monitoring` for a host Prometheus (service_prometheus.py)."""
    namespace, name, port = PROMETHEUS_SERVICE
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace,
                     "labels": {"operated-prometheus": "true"}},
        "spec": {"ports": [{"name": "web", "port": port, "targetPort": "web"}]},
    }  # fmt: skip
    return routed_to_host(service, "web", host_port, address)


def certificate_names() -> list[str]:
    """The three Services' names, as KEDA's certificate manager puts them in its certificate,
    and the addresses the processes listen on."""
    names = []
    for service in COMPONENTS:
        names += [f"DNS:{service}.{NAMESPACE}.svc", f"DNS:{service}.{NAMESPACE}.svc.cluster.local"]
    return [*names, f"IP:{LOOPBACK}", f"IP:{BRIDGE_ADDRESS}"]


def cluster_names(cluster_ips: dict[tuple[str, str], str]) -> dict[str, str]:
    """Host names -> ClusterIPs for the Services the processes dial by name."""
    names = {}
    for (namespace, name), address in cluster_ips.items():
        names[f"{name}.{namespace}.svc"] = address
        names[f"{name}.{namespace}.svc.cluster.local"] = address
    return names


def environment(kubeconfig: Path) -> dict[str, str]:
    """What KEDA's Deployments set (config/manager, metrics-server, webhooks), and the
    kubeconfig controller-runtime reads where a pod would use its mounted token."""
    return {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        # Every namespace, as the release ships it.
        "WATCH_NAMESPACE": "",
        # In a pod these come from the downward API and the ServiceAccount's mount.
        "POD_NAMESPACE": NAMESPACE,
        "KEDA_CLUSTER_OBJECT_NAMESPACE": NAMESPACE,
    }


def commands(binaries: dict[str, Path], certs: Path, kubeconfig: Path,
             ports: dict[str, int]) -> dict[str, list[str]]:  # fmt: skip
    """Each program's command line: the release's Deployment arguments, and the addresses and
    files a host process needs in place of a pod's."""
    logging = ["--zap-log-level=info", "--zap-encoder=console", "--zap-time-encoding=rfc3339"]
    return {
        OPERATOR: [
            str(binaries[OPERATOR]), *logging,
            # One replica: no leader election (a restart would otherwise wait out the lease).
            f"--cert-dir={certs}",
            f"--metrics-service-bind-address={BRIDGE_ADDRESS}:{ports['grpc']}",
            f"--metrics-bind-address={LOOPBACK}:{ports['operator-metrics']}",
            f"--health-probe-bind-address={LOOPBACK}:{ports['operator-health']}",
        ],
        METRICS_SERVER: [
            str(binaries[METRICS_SERVER]), *logging,
            f"--bind-address={BRIDGE_ADDRESS}", f"--secure-port={ports['metrics-server']}",
            f"--client-ca-file={certs / 'ca.crt'}", f"--tls-cert-file={certs / 'tls.crt'}",
            f"--tls-private-key-file={certs / 'tls.key'}",
            # Also where its gRPC client reads ca.crt, tls.crt and tls.key.
            f"--cert-dir={certs}",
            f"--lister-kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            f"--port={ports['metrics-server-metrics']}",
        ],
        WEBHOOKS: [
            str(binaries[WEBHOOKS]), *logging,
            f"--cert-dir={certs}", f"--port={ports['webhooks']}",
            f"--metrics-bind-address={LOOPBACK}:{ports['webhooks-metrics']}",
            f"--health-probe-bind-address={LOOPBACK}:{ports['webhooks-health']}",
        ],
    }  # fmt: skip


def folder(layout: ClusterLayout) -> Path:
    return layout.root / "keda"


def _free_port(address: str) -> int:
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


def _free_ports() -> dict[str, int]:
    on_bridge = ("grpc", "metrics-server", "webhooks", "metrics-server-metrics")
    on_loopback = ("operator-metrics", "operator-health", "webhooks-metrics", "webhooks-health")
    return {**{name: _free_port(BRIDGE_ADDRESS) for name in on_bridge},
            **{name: _free_port(LOOPBACK) for name in on_loopback}}  # fmt: skip


def start(layout: ClusterLayout, api: KubeApi, apply: Callable[[list[dict[str, Any]]], None],
          prometheus_port: int) -> dict[str, float]:  # fmt: skip
    """Register and start the three against the host Prometheus at `prometheus_port` on the
    bridge address (the CRDs of `crds(release_dir())` must be installed and Established first).

    `apply(documents)` applies objects server-side. Returns seconds from start until each part
    answered: the operator's and the webhooks' readyz, the APIService Available."""
    binaries = ensure_binaries(layout)
    release = release_dir()
    own = folder(layout)
    own.mkdir(parents=True, exist_ok=True)
    certs = ensure_own_ca_cert(own / "certs", "keda-e2e-ca", certificate_names())
    ca_bundle = Pki(certs).ca_cert.read_bytes()
    ports = _free_ports()
    host_ports = {OPERATOR: ports["grpc"], METRICS_SERVER: ports["metrics-server"],
                  WEBHOOKS: ports["webhooks"]}  # fmt: skip
    documents = [d for path in RBAC_FILES for d in load(release, path)]
    for name, path in SERVICE_FILES.items():
        documents += routed_to_host(load(release, path)[0], SERVED_PORTS[name], host_ports[name])
    apply([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "monitoring"}},
           *documents, *prometheus_service(prometheus_port)])  # fmt: skip
    kubeconfig = own / "kubeconfig"
    write_service_account_kubeconfig(api, kubeconfig, Pki(layout.pki).ca_cert, NAMESPACE,
                                     SERVICE_ACCOUNT, TOKEN_SECONDS)  # fmt: skip
    dialled = {(NAMESPACE, OPERATOR), PROMETHEUS_SERVICE[:2]}
    cluster_ips = {(ns, name): api.get(f"/api/v1/namespaces/{ns}/services/{name}")["spec"]
                   ["clusterIP"] for ns, name in dialled}  # fmt: skip
    hosts = host_names.write_hosts(own / "hosts", cluster_names(cluster_ips))
    env = environment(kubeconfig)
    started = time.monotonic()
    for name, command in commands(binaries, certs, kubeconfig, ports).items():
        processes.start_detached(command, layout.pid_file(name), layout.log_file(name), env=env,
                                 preexec_fn=host_names.private_hosts(hosts))  # fmt: skip
    apply([with_ca_bundle(load(release, API_SERVICE_FILE)[0], ca_bundle),
           with_ca_bundle(load(release, WEBHOOKS_FILE)[0], ca_bundle)])  # fmt: skip
    answered = {}
    for name, port in ((OPERATOR, ports["operator-health"]), (WEBHOOKS, ports["webhooks-health"])):
        _wait(layout, name, lambda p=port: processes.answers(f"http://{LOOPBACK}:{p}/readyz"))
        answered[name] = time.monotonic() - started
    _wait(layout, METRICS_SERVER, lambda: available(api) == "True")
    answered[METRICS_SERVER] = time.monotonic() - started
    return answered


def _wait(layout: ClusterLayout, name: str, check: Callable[[], bool]) -> None:
    watched = {layout.pid_file(c): layout.log_file(c) for c in COMPONENTS}
    processes.wait_until(
        check, watched, name, layout.log_file(name), START_TIMEOUT_SECONDS, interval_seconds=0.5
    )


def available(api: KubeApi) -> str:
    """The APIService's Available condition: 'True', or the reason it is not."""
    service = api.get(f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}")
    condition = next((c for c in service.get("status", {}).get("conditions", [])
                      if c["type"] == "Available"), {})  # fmt: skip
    if condition.get("status") == "True":
        return "True"
    return f"{condition.get('reason')}: {condition.get('message', '')}"


def unregister(api: KubeApi) -> None:
    """Remove the APIService and the webhooks: once KEDA is gone, discovery would report the
    group unavailable to every client, and each ScaledObject write would wait on the webhook."""
    for path in (f"/apis/apiregistration.k8s.io/v1/apiservices/{API_SERVICE}",
                 "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/"
                 f"{WEBHOOK_CONFIGURATION}"):  # fmt: skip
        try:
            api.delete(path)
        except ApiError as error:
            if error.status != 404:
                raise


def stop(layout: ClusterLayout) -> None:
    for name in COMPONENTS:
        processes.stop(layout.pid_file(name), 10.0)
    shutil.rmtree(folder(layout), ignore_errors=True)
