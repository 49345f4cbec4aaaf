"""Reading the Triton pod out of a render: its container, arguments as Triton will see them."""

from __future__ import annotations

import re
from typing import Any

from inference_tools.manifests.render import Render
from kubernetes.utils import parse_quantity

Resource = dict[str, Any]
VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
UNRESOLVED = "<from Secret {name}/{key}>"


def deployment(render: Render) -> Resource:
    return render.one("Deployment", "triton")


def pod_spec(render: Render) -> Resource:
    return deployment(render)["spec"]["template"]["spec"]


def container(render: Render) -> Resource:
    containers = pod_spec(render)["containers"]
    assert [c["name"] for c in containers] == ["triton"], "one container, named triton"
    return containers[0]


def http_guard(render: Render) -> Resource:
    """The native sidecar in front of Triton's HTTP port (pod_hooks/http_guard.py)."""
    sidecars = pod_spec(render).get("initContainers", [])
    assert [c["name"] for c in sidecars] == ["http-guard"], "one sidecar, the HTTP guard"
    assert sidecars[0]["restartPolicy"] == "Always", "a native sidecar outlives Triton's drain"
    return sidecars[0]


def env_values(render: Render) -> dict[str, str]:
    """The container's environment as Kubernetes resolves it (Secrets stay placeholders)."""
    values = {}
    for var in container(render).get("env", []):
        if "value" in var:
            values[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            data = render.one("ConfigMap", ref["name"]).get("data", {})
            if ref["key"] in data:
                values[var["name"]] = data[ref["key"]]
        elif "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            values[var["name"]] = UNRESOLVED.format(**ref)
    return values


def triton_args(render: Render) -> list[str]:
    """The container's args with $(VAR) substituted, as the kubelet does before starting it."""
    env = env_values(render)
    return [
        VARIABLE.sub(lambda m: env.get(m.group(1), m.group(0)), arg)
        for arg in container(render).get("args", [])
    ]


def flag_values(render: Render, flag: str) -> list[str]:
    """Every value given to `--flag=VALUE`, in order (Triton keeps the last)."""
    prefix = f"{flag}="
    return [arg[len(prefix) :] for arg in triton_args(render) if arg.startswith(prefix)]


def flag(render: Render, flag_name: str) -> str | None:
    values = flag_values(render, flag_name)
    return values[-1] if values else None


def command_option(command: list[str], option: str) -> str:
    """The value of `--option=VALUE` in an exec command such as the preStop hook."""
    prefix = f"{option}="
    values = [part[len(prefix) :] for part in command if part.startswith(prefix)]
    assert len(values) == 1, f"{option} given {len(values)} times in {command}"
    return values[0]


def labels_match(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels and matchExpressions) against a label set."""
    for key, value in selector.get("matchLabels", {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and labels.get(key) in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def quantity_bytes(quantity: str) -> int:
    """A Kubernetes memory quantity (`8Gi`, `512M`, plain bytes) in bytes."""
    return int(parse_quantity(quantity))


# The volume types the restricted Pod Security Standard admits.
RESTRICTED_VOLUME_TYPES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def assert_restricted(render: Render, spec: Resource) -> None:
    """The pod spec meets the restricted Pod Security Standard, with our own hardening on top:
    a read-only root filesystem, requests and limits, no ServiceAccount token."""
    assert spec["securityContext"]["runAsNonRoot"] is True, render.name
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert spec["securityContext"]["runAsUser"] > 0
    assert spec["automountServiceAccountToken"] is False
    assert not spec.get("hostNetwork") and not spec.get("hostPID") and not spec.get("hostIPC")
    for volume in spec["volumes"]:
        kinds = set(volume) - {"name"}
        assert kinds <= RESTRICTED_VOLUME_TYPES, (render.name, volume)
    for c in spec["containers"]:
        context = c["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, render.name
        assert context["readOnlyRootFilesystem"] is True, render.name
        assert context["capabilities"] == {"drop": ["ALL"]}, render.name
        assert not context.get("privileged"), render.name
        for resource in ("cpu", "memory", "ephemeral-storage"):
            assert resource in c["resources"]["requests"], (render.name, resource)
            assert resource in c["resources"]["limits"], (render.name, resource)
    account = render.one("ServiceAccount", spec["serviceAccountName"])
    assert account["automountServiceAccountToken"] is False
