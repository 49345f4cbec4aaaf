"""The manifests users apply, on a real API server whose namespace enforces Pod Security
`restricted`: accepted without a single warning; a privileged pod is refused by admission."""

from __future__ import annotations

import json
import ssl
import time
import urllib.request

import pytest
from kubecluster.kubeapi import KubeApi

from tests.e2e.conftest import LOCAL_OVERLAYS, NAMESPACE, Kubectl, apply_release, wait_for

pytestmark = pytest.mark.e2e

PRIVILEGED_POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "privileged-probe", "namespace": NAMESPACE},
    "spec": {
        "containers": [
            {
                "name": "triton",
                "image": "ghcr.io/example/scalable-inference-server:0.1.0",
                "command": ["/opt/tritonserver/bin/tritonserver"],
                "securityContext": {"privileged": True},
            }
        ]
    },
}


def test_namespace_and_cpu_overlay_apply_with_zero_warnings(kubectl: Kubectl) -> None:
    started = time.monotonic()
    applied = apply_release(kubectl, "cpu")
    seconds = time.monotonic() - started
    namespace = json.loads(kubectl.run("get", "namespace", NAMESPACE, "-o", "json").stdout)
    print(
        f"\napply (namespace, admin Secret, overlays/cpu; server-side): {len(applied.objects)} "
        f"objects in {seconds:.1f} s, {len(applied.warnings)} warnings: {applied.objects}"
    )
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert applied.warnings == []
    assert "deployment.apps/triton" in applied.objects


def test_privileged_pod_is_refused_by_pod_security_admission(kubectl: Kubectl) -> None:
    # ServiceAccount admission refuses any pod until the controller manager has made the
    # namespace's `default` account; only then does the refusal come from Pod Security.
    wait_for(
        "the namespace's default ServiceAccount",
        lambda: kubectl.run("get", "serviceaccount", "default", f"--namespace={NAMESPACE}",
                            check=False).returncode == 0,
        timeout=30,
    )  # fmt: skip
    result = kubectl.run(
        "apply", "--server-side", "-f", "-", check=False, input_text=json.dumps(PRIVILEGED_POD)
    )
    reason = result.stderr.strip()
    print(f"\nprivileged pod: exit {result.returncode}: {reason[:300]}")
    assert result.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in reason
    assert "privileged" in reason
    missing = kubectl.run("get", "pod", "privileged-probe", f"--namespace={NAMESPACE}", check=False)
    assert missing.returncode != 0


def test_a_serviceaccount_token_authenticates(kubectl: Kubectl, api: KubeApi) -> None:
    """A token the API server signs with the cluster's ServiceAccount key is accepted back."""
    token = kubectl.run(
        "create", "token", "triton", f"--namespace={NAMESPACE}", "--duration=10m"
    ).stdout.strip()
    context = ssl.create_default_context(cafile=api.context_ca)
    request = urllib.request.Request(
        f"https://{api.host}:{api.port}/apis/authentication.k8s.io/v1/selfsubjectreviews",
        data=json.dumps(
            {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        ).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, context=context, timeout=10) as response:
        user = json.loads(response.read())["status"]["userInfo"]
    print(f"\nServiceAccount token: authenticated as {user['username']}")
    assert user["username"] == f"system:serviceaccount:{NAMESPACE}:triton"


def test_cpu_hpa_overlay_is_accepted_with_zero_warnings(
    kubectl: Kubectl, monitoring_crds: list[str], cpu_release: None
) -> None:
    """A server-side dry run: admission, the CRDs' schemas and CEL rules and defaulting all
    run, and the cpu release stays as it is for the other scenarios."""
    result = kubectl.run(
        "apply", "--server-side", "--dry-run=server", "-k", str(LOCAL_OVERLAYS / "cpu-hpa")
    )
    objects = [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    warnings = [line for line in result.stderr.splitlines() if "Warning" in line]
    print(
        f"\ncpu-hpa (server-side dry run, CRDs {', '.join(monitoring_crds)}): "
        f"{len(objects)} objects, {len(warnings)} warnings"
    )
    assert warnings == []
    assert {"servicemonitor.monitoring.coreos.com/triton",
            "horizontalpodautoscaler.autoscaling/triton"} <= set(objects)  # fmt: skip
