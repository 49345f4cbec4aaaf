"""What every end-to-end scenario shares: the running `make cluster`, kubectl at the server's
release pointed at it, an API client, and the serving release applied through its local overlay.

The driver and the pod runner live in tools/cluster (developer tooling, not the package).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.checkout import CHECKOUT, KUSTOMIZE_DIR

sys.path.insert(0, str(CHECKOUT / "tools" / "cluster"))

from kubecluster import control_plane
from kubecluster.build import binary_dir
from kubecluster.crds import prometheus_operator_crds
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import ClusterLayout, pinned_versions

NAMESPACE = "inference"
LOCAL_OVERLAYS = Path(__file__).resolve().parent / "overlays"
# The Secret the overlays' Deployment reads (docs/kubernetes.md: created by whoever deploys).
ADMIN_KEY = "e2e-admin-key"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The teardown scenario takes the cluster away: it runs after every other one."""
    items.sort(key=lambda item: item.path.name == "test_teardown.py")


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path

    def run(
        self, *args: str, check: bool = True, input_text: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), f"--kubeconfig={self.kubeconfig}", *args],
            capture_output=True, text=True, input=input_text, check=False, cwd=CHECKOUT,
        )  # fmt: skip
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result


@pytest.fixture(scope="session")
def cluster() -> ClusterLayout:
    layout = ClusterLayout.for_checkout(CHECKOUT)
    if not control_plane.is_running(layout):
        pytest.fail("no cluster answers: `make e2e` starts one (or run `make cluster` first)")
    return layout


@pytest.fixture(scope="session")
def kubectl(cluster: ClusterLayout) -> Kubectl:
    return Kubectl(binary_dir(cluster, pinned_versions()) / "kubectl", cluster.kubeconfig)


@pytest.fixture(scope="session")
def api(cluster: ClusterLayout) -> KubeApi:
    return KubeApi.from_kubeconfig(cluster.kubeconfig)


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def apply_documents(kubectl: Kubectl) -> Callable[[list[dict[str, Any]]], None]:
    """Server-side apply of objects built in Python (the drivers' registrations)."""

    def apply(documents: list[dict[str, Any]]) -> None:
        text = "".join("---\n" + yaml.safe_dump(d) for d in documents)
        kubectl.run("apply", "--server-side", "-f", "-", input_text=text)

    return apply


@dataclass
class Applied:
    objects: list[str]
    warnings: list[str]


def apply_release(kubectl: Kubectl, overlay: str) -> Applied:
    """Namespace, admin Secret and overlay, server-side, as docs/kubernetes.md has users do."""
    secret = kubectl.run(
        "create", "secret", "generic", "triton-admin-key", f"--namespace={NAMESPACE}",
        f"--from-literal=header-value={ADMIN_KEY}", "--dry-run=client", "-o", "yaml",
    ).stdout  # fmt: skip
    applied = Applied([], [])
    for args, stdin in (
        (("-k", "kustomize/namespace"), None),
        (("-f", "-"), secret),
        (("-k", str(LOCAL_OVERLAYS / overlay)), None),
    ):
        result = kubectl.run("apply", "--server-side", *args, input_text=stdin)
        applied.objects += [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
        applied.warnings += [line for line in result.stderr.splitlines() if "Warning" in line]
    return applied


@pytest.fixture(scope="session")
def monitoring_crds(kubectl: Kubectl) -> list[str]:
    """The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs, established."""
    names = []
    for crd in prometheus_operator_crds():
        result = kubectl.run("apply", "--server-side", "-f", str(crd))
        names += [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *names)
    return names


@pytest.fixture(scope="session")
def cpu_release(kubectl: Kubectl) -> Iterator[None]:
    apply_release(kubectl, "cpu")
    yield


# The publisher-rbac component's ServiceAccount.
PUBLISHER_RBAC = KUSTOMIZE_DIR / "components" / "publisher-rbac"
SERVICE_ACCOUNT = "triton-publisher"


@pytest.fixture
def publisher_kubeconfig(
    kubectl: Kubectl, api: KubeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    # The component's own files, into the release's namespace (as an overlay listing it does).
    for manifest in sorted(PUBLISHER_RBAC.glob("triton-publisher-*.yaml")):
        kubectl.run("apply", "--server-side", f"--namespace={NAMESPACE}", "-f", str(manifest))
    token = kubectl.run(
        "create", "token", SERVICE_ACCOUNT, f"--namespace={NAMESPACE}", "--duration=10m"
    ).stdout.strip()
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "e2e", "cluster": {
            "server": f"https://{api.host}:{api.port}", "certificate-authority": api.context_ca}}],
        "users": [{"name": SERVICE_ACCOUNT, "user": {"token": token}}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": SERVICE_ACCOUNT}}],
        "current-context": "e2e",
    }  # fmt: skip
    path = tmp_path / "publisher.kubeconfig"
    path.write_text(json.dumps(config))
    monkeypatch.setenv("KUBECONFIG", str(path))
    return path
