"""Monitoring as users run it, on `make cluster`: the Prometheus Operator, built from its pinned
release, turns ServiceMonitors into Prometheus's configuration, and a host Prometheus runs that
configuration, scraping the pods at their IPs.

Why a host Prometheus and not the operator's own pod: the operator's StatefulSet runs the
Prometheus and config-reloader images, which the pod runner cannot run (it runs only the
serving image). What the operator decides (the scrape jobs, the relabelling that turns a
ServiceMonitor into target labels) is its generated configuration, taken unchanged from the
Secret it writes; two things a pod would get from its surroundings are supplied instead:
the API server's address and credentials for Kubernetes service discovery (a pod finds them
in-cluster), and the $(VAR) expansion the config-reloader sidecar does. docs/cluster.md says
more.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

from kubecluster import processes
from kubecluster.build import BuildError, ModuleTool, ensure_tool
from kubecluster.crds import module_dir
from kubecluster.kubeapi import ApiError, KubeApi
from kubecluster.layout import GO_MODULE_DIR, ClusterLayout

OPERATOR_TOOL = ModuleTool(
    "prometheus-operator", "github.com/prometheus-operator/prometheus-operator",
    "github.com/prometheus-operator/prometheus-operator/cmd/operator",
    GO_MODULE_DIR / "prometheus-operator",
)  # fmt: skip
PROMETHEUS_TOOL = ModuleTool(
    "prometheus", "github.com/prometheus/prometheus",
    "github.com/prometheus/prometheus/cmd/prometheus", GO_MODULE_DIR / "prometheus",
)  # fmt: skip
# Another Prometheus to run the operator's configuration (one with Kubernetes discovery).
PROMETHEUS_OVERRIDE = os.environ.get("PROMETHEUS_BINARY", "")
NAMESPACE = "monitoring"
PROMETHEUS_NAME = "e2e"
# The operator's POD_NAME for the first replica of Prometheus `e2e`, which its config-reloader
# would expand into the external labels.
POD_NAME = f"prometheus-{PROMETHEUS_NAME}-0"
OPERATOR = "prometheus-operator"
PROMETHEUS = "prometheus"
START_TIMEOUT_SECONDS = 120.0
LOOPBACK_ADDRESS = "127.0.0.1"
ENV_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def prometheus_release(module_version: str) -> str:
    """Prometheus's Go module versions its release 3.Y.Z as v0.3YY.Z (v0.305.0 is 3.5.0)."""
    major_minor, patch = module_version.lstrip("v").split(".")[1:3]
    return f"{int(major_minor) // 100}.{int(major_minor) % 100}.{patch}"


def prometheus_binary(layout: ClusterLayout) -> Path:
    """PROMETHEUS_BINARY where set, else Prometheus built from its pinned module: Debian's
    build (2.42) leaves out the Kubernetes service discovery the operator's jobs use."""
    if PROMETHEUS_OVERRIDE:
        return Path(PROMETHEUS_OVERRIDE)
    release = prometheus_release(PROMETHEUS_TOOL.version())
    stamp = f"-X github.com/prometheus/common/version.Version={release}"
    return ensure_tool(layout, PROMETHEUS_TOOL, ldflags=stamp)


def operator_crds() -> list[Path]:
    """Every CRD of the operator's release: it starts its controllers only for installed ones."""
    folder = module_dir(f"{OPERATOR_TOOL.module}@{OPERATOR_TOOL.version()}") / "example"
    return sorted((folder / "prometheus-operator-crd").glob("*.yaml"))


def _free_port() -> int:
    with socket.socket() as listener:
        listener.bind((LOOPBACK_ADDRESS, 0))
        return int(listener.getsockname()[1])


def start_operator(layout: ClusterLayout) -> None:
    if processes.running_pid(layout.pid_file(OPERATOR)) is not None:
        return
    binary = ensure_tool(layout, OPERATOR_TOOL)
    processes.start_detached(
        [str(binary), f"--web.listen-address={LOOPBACK_ADDRESS}:{_free_port()}",
         f"--prometheus-instance-namespaces={NAMESPACE}"],
        layout.pid_file(OPERATOR), layout.log_file(OPERATOR),
        env=dict(os.environ, KUBECONFIG=str(layout.kubeconfig)),
    )  # fmt: skip


def prometheus_resources(version: str) -> list[dict[str, Any]]:
    """The namespace, the identity Prometheus discovers targets with (kube-prometheus grants
    its Prometheus the same reads), and the Prometheus object the operator configures."""
    labels = {"app.kubernetes.io/name": "prometheus", "app.kubernetes.io/instance": "e2e"}
    rules = [{"apiGroups": [""], "resources": ["services", "endpoints", "pods"],
              "verbs": ["get", "list", "watch"]},
             {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
              "verbs": ["get", "list", "watch"]}]  # fmt: skip
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": PROMETHEUS, "namespace": NAMESPACE, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "prometheus-e2e", "labels": labels}, "rules": rules},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "prometheus-e2e", "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                     "name": "prometheus-e2e"},
         "subjects": [{"kind": "ServiceAccount", "name": PROMETHEUS, "namespace": NAMESPACE}]},
        {"apiVersion": "monitoring.coreos.com/v1", "kind": "Prometheus",
         "metadata": {"name": PROMETHEUS_NAME, "namespace": NAMESPACE, "labels": labels},
         "spec": {
             # The configuration is generated for the Prometheus that runs it.
             "version": version,
             # No pod: the host Prometheus below runs the configuration instead.
             "replicas": 0,
             "serviceAccountName": PROMETHEUS,
             "serviceMonitorSelector": {},
             "serviceMonitorNamespaceSelector": {},
         }},
    ]  # fmt: skip


def has_kubernetes_discovery(binary: Path, folder: Path) -> bool:
    """Whether a Prometheus accepts kubernetes_sd_configs (its promtool beside it)."""
    config = folder / "kubernetes-sd-probe.yaml"
    config.write_text(yaml.safe_dump({"scrape_configs": [{
        "job_name": "probe",
        "kubernetes_sd_configs": [{"role": "endpoints", "api_server": "https://127.0.0.1:1"}],
    }]}))  # fmt: skip
    promtool = binary.with_name("promtool")
    result = subprocess.run([str(promtool), "check", "config", str(config)],
                            capture_output=True, check=False)  # fmt: skip
    return result.returncode == 0


def prometheus_version(binary: Path) -> str:
    result = subprocess.run([str(binary), "--version"], capture_output=True,
                            text=True, check=False)  # fmt: skip
    match = re.search(r"version (\d+\.\d+\.\d+)", result.stdout + result.stderr)
    if not match:
        raise BuildError(f"{binary} --version said nothing usable")
    return f"v{match.group(1)}"


def generated_config(api: KubeApi) -> dict[str, Any] | None:
    """The configuration the operator wrote for Prometheus `e2e`, or None before it has."""
    try:
        secret = api.get(f"/api/v1/namespaces/{NAMESPACE}/secrets/prometheus-{PROMETHEUS_NAME}")
    except ApiError as error:
        if error.status == 404:
            return None
        raise
    data = (secret.get("data") or {}).get("prometheus.yaml.gz")
    if not data:
        return None
    return dict(yaml.safe_load(gzip.decompress(base64.b64decode(data))))


def host_config(
    config: dict[str, Any], server: str, ca_file: Path, token_file: Path
) -> dict[str, Any]:
    """The operator's configuration, with what its pod would get from its surroundings."""
    text = json.dumps(config)

    def expand(match: re.Match[str]) -> str:
        # The config-reloader expands $(VAR) from its container's env, where the operator's
        # StatefulSet puts the pod's name and its shard's number (one shard: 0).
        known = {"POD_NAME": POD_NAME, "SHARD": "0"}
        if match.group(1) not in known:
            raise ValueError(f"the operator's configuration names $({match.group(1)})")
        return known[match.group(1)]

    expanded: dict[str, Any] = json.loads(ENV_REFERENCE.sub(expand, text))
    for job in expanded.get("scrape_configs") or []:
        for discovery in job.get("kubernetes_sd_configs") or []:
            # In a pod, client-go finds these in-cluster; on the host they are given.
            discovery["api_server"] = server
            discovery["tls_config"] = {"ca_file": str(ca_file)}
            discovery["authorization"] = {"credentials_file": str(token_file)}
    return expanded


def _config_folder(layout: ClusterLayout) -> Path:
    return layout.root / "prometheus"


def write_config(layout: ClusterLayout, api: KubeApi, server: str) -> bool:
    """Write the host configuration from the operator's current Secret; True if it changed."""
    config = generated_config(api)
    if config is None:
        return False
    folder = _config_folder(layout)
    folder.mkdir(parents=True, exist_ok=True)
    token_file = folder / "token"
    if not token_file.is_file():
        token = api.create(
            f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{PROMETHEUS}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": 3600}},
        )["status"]["token"]  # fmt: skip
        token_file.write_text(token)
        token_file.chmod(0o600)
    config_file = folder / "prometheus.yaml"
    text = yaml.safe_dump(host_config(config, server, layout.pki / "ca.crt", token_file))
    if config_file.is_file() and config_file.read_text() == text:
        return False
    config_file.write_text(text)
    return True


def start_prometheus(layout: ClusterLayout, api: KubeApi, server: str) -> str:
    """Wait for the operator's configuration, then run it on the host; return the URL."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not write_config(layout, api, server):
        if time.monotonic() > deadline:
            log = layout.log_file(OPERATOR)
            raise TimeoutError(f"the operator wrote no configuration; see {log}")
        time.sleep(0.5)
    folder = _config_folder(layout)
    port = _free_port()
    processes.start_detached(
        [str(prometheus_binary(layout)), f"--config.file={folder / 'prometheus.yaml'}",
         f"--web.listen-address={LOOPBACK_ADDRESS}:{port}",
         f"--storage.tsdb.path={folder / 'data'}"],
        layout.pid_file(PROMETHEUS), layout.log_file(PROMETHEUS),
    )  # fmt: skip
    url = f"http://{LOOPBACK_ADDRESS}:{port}"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as answer:
                if answer.status == 200:
                    return url
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"Prometheus did not become ready; see {layout.log_file(PROMETHEUS)}")


def scrape_jobs(api: KubeApi) -> list[str]:
    return [job["job_name"] for job in (generated_config(api) or {}).get("scrape_configs") or []]


def query(url: str, promql: str, at: float | None = None) -> list[dict[str, Any]]:
    """An instant query, now or at `at` (Unix seconds)."""
    parameters = {"query": promql} | ({} if at is None else {"time": f"{at:.3f}"})
    with urllib.request.urlopen(
        f"{url}/api/v1/query?{urllib.parse.urlencode(parameters)}", timeout=10
    ) as answer:
        body = json.loads(answer.read())
    return list(body["data"]["result"])


def targets(url: str) -> list[dict[str, Any]]:
    """Prometheus's active targets: their labels, health and last scrape error."""
    with urllib.request.urlopen(f"{url}/api/v1/targets?state=active", timeout=10) as answer:
        body = json.loads(answer.read())
    return [
        {k: t.get(k) for k in ("scrapeUrl", "health", "lastError", "labels")}
        for t in body["data"]["activeTargets"]
    ]


def stop(layout: ClusterLayout) -> None:
    for component in (PROMETHEUS, OPERATOR):
        processes.stop(layout.pid_file(component), 10.0)
    # Its data and token belong to this cluster, whose etcd goes with `make cluster-down`.
    shutil.rmtree(_config_folder(layout), ignore_errors=True)
