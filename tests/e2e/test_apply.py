"""The manifests users apply, on a real API server whose namespace enforces Pod Security
`restricted`: accepted without a single warning; a privileged pod is refused by admission."""

from __future__ import annotations

import json
import time

import pytest

from tests.e2e.conftest import NAMESPACE, Kubectl, apply_release

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
    warnings = apply_release(kubectl, "cpu")
    seconds = time.monotonic() - started
    labels = json.loads(kubectl.run("get", "namespace", NAMESPACE, "-o", "json").stdout)[
        "metadata"
    ]["labels"]
    kinds = "deployment,service,serviceaccount,poddisruptionbudget,networkpolicy,configmap,secret"
    objects = kubectl.run("get", kinds, f"--namespace={NAMESPACE}", "-o", "name").stdout.split()
    print(
        f"\napply (namespace, admin Secret, overlays/cpu, server-side): {len(objects)} objects "
        f"in {NAMESPACE} in {seconds:.1f} s, {len(warnings)} warnings"
    )
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert warnings == []
    assert "deployment.apps/triton" in objects


def test_privileged_pod_is_refused_by_pod_security_admission(kubectl: Kubectl) -> None:
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
