"""From a pod's spec to what the runner executes: env (ConfigMaps, Secrets, the downward API),
$(VAR) expansion, the container's argv on this machine, volumes, user and probes.

Everything the runner cannot honour is refused here, before anything starts, with the reason.
"""

from __future__ import annotations

import base64
import dataclasses
import math
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubecluster.image_map import ImageMap, UnmappableContainer, is_serving_image
from kubecluster.layout import KUBERNETES_SERVICE_IP

VARIABLE_REFERENCE = re.compile(r"\$\$|\$\(([-._a-zA-Z][-._a-zA-Z0-9]*)\)")
QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
BINARY_SUFFIXES = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
DECIMAL_SUFFIXES = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "m": 10**-3}
SUPPORTED_VOLUMES = {"emptyDir"}
SUPPORTED_PROBES = ("exec", "httpGet", "tcpSocket")


def quantity(value: str | int | float) -> float:
    match = QUANTITY.match(str(value))
    if not match:
        raise UnmappableContainer(f"quantity {value!r} is not understood")
    number, suffix = float(match.group(1)), match.group(2)
    if suffix in BINARY_SUFFIXES:
        return number * BINARY_SUFFIXES[suffix]
    if suffix in DECIMAL_SUFFIXES:
        return number * DECIMAL_SUFFIXES[suffix]
    raise UnmappableContainer(f"quantity suffix {suffix!r} in {value!r} is not understood")


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) rule: defined names are replaced, `$$` is a literal `$`, an undefined
    reference stays as written."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match.group(1), match.group(0))

    return VARIABLE_REFERENCE.sub(substitute, text)


@dataclass(frozen=True)
class Probe:
    kind: str
    spec: dict[str, Any]
    initial_delay_seconds: float
    period_seconds: float
    timeout_seconds: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def from_spec(cls, spec: dict[str, Any], container: str, role: str) -> Probe:
        kinds = [k for k in ("exec", "httpGet", "tcpSocket", "grpc") if k in spec]
        if not kinds or kinds[0] not in SUPPORTED_PROBES:
            raise UnmappableContainer(
                f"container {container!r}: {role} probe {kinds} is not supported by the pod runner"
            )
        return cls(
            kind=kinds[0],
            spec=spec[kinds[0]],
            initial_delay_seconds=float(spec.get("initialDelaySeconds", 0)),
            period_seconds=float(spec.get("periodSeconds", 10)),
            timeout_seconds=float(spec.get("timeoutSeconds", 1)),
            success_threshold=int(spec.get("successThreshold", 1)),
            failure_threshold=int(spec.get("failureThreshold", 3)),
        )


@dataclass(frozen=True)
class Mount:
    """A tmpfs (emptyDir, medium Memory) or a bind of a per-pod folder (emptyDir on disk)."""

    path: str
    tmpfs_bytes: int | None
    folder: Path | None


@dataclass
class ContainerPlan:
    name: str
    image: str
    argv: list[str]
    env: dict[str, str]
    uid: int
    gid: int
    groups: list[int]
    no_new_privileges: bool
    drop_all_capabilities: bool
    read_only_root: bool
    mounts: list[Mount]
    ports: dict[str, int]
    startup: Probe | None
    readiness: Probe | None
    liveness: Probe | None
    pre_stop: list[str] | None
    cpu_limit: float | None
    memory_limit_bytes: int | None
    # An init container with restartPolicy: Always (a native sidecar).
    sidecar: bool = False
    # The host folders the mapped image lives in (checkout, server, pod Python, volumes): a
    # mount over one of their ancestors (an emptyDir at /tmp over a checkout under /tmp) must
    # not hide them from the container.
    host_paths: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _host_command(
    argv: list[str], image_map: ImageMap, container: str, env: dict[str, str]
) -> list[str]:
    """The argv with image paths mapped. A mapped script without its execute bit (the image's
    COPY --chmod=0755 sets it, git does not keep it for every hook) runs under python3 from
    the container's PATH, which is what its `#!/usr/bin/env python3` line asks for."""
    if not argv:
        raise UnmappableContainer(f"container {container!r}: no command to run")
    executable = image_map.executable(argv[0], container)
    rest: list[str] = list(image_map.added_arguments.get(executable, []))
    for argument in argv[1:]:
        mapped = image_map.map_argument(argument)
        rest += [mapped, *image_map.added_arguments.get(mapped, [])]
    if not os.access(executable, os.X_OK):
        python = shutil.which("python3", path=env.get("PATH"))
        if python is None:
            raise UnmappableContainer(f"container {container!r}: no python3 on its PATH")
        return [python, executable, *rest]
    return [executable, *rest]


Lookup = Callable[[str, str], dict[str, Any]]


def _object_data(lookup: Lookup, kind: str, name: str) -> dict[str, str]:
    obj = lookup(kind, name)
    if kind == "secrets":
        return {k: base64.b64decode(v).decode() for k, v in (obj.get("data") or {}).items()}
    return dict(obj.get("data") or {})


def _field_value(pod: dict[str, Any], path: str, pod_ip: str, host_ip: str) -> str:
    metadata = pod["metadata"]
    simple = {
        "metadata.name": metadata["name"],
        "metadata.namespace": metadata["namespace"],
        "metadata.uid": metadata["uid"],
        "spec.nodeName": pod["spec"].get("nodeName", ""),
        "spec.serviceAccountName": pod["spec"].get("serviceAccountName", ""),
        "status.podIP": pod_ip,
        "status.hostIP": host_ip,
    }
    if path in simple:
        return simple[path]
    keyed = re.match(r"metadata\.(labels|annotations)\['(.+)'\]$", path)
    if keyed:
        return (metadata.get(keyed.group(1)) or {}).get(keyed.group(2), "")
    raise UnmappableContainer(f"fieldRef {path!r} is not supported by the pod runner")


def _resource_value(container: dict[str, Any], resource: str, divisor: str | None) -> str:
    section, _, name = resource.partition(".")
    value = ((container.get("resources") or {}).get(section) or {}).get(name)
    if value is None:
        raise UnmappableContainer(f"resourceFieldRef {resource!r}: not set on the container")
    amount = quantity(value) / quantity(divisor or "1")
    return str(math.ceil(amount))


def container_env(
    pod: dict[str, Any], container: dict[str, Any], lookup: Lookup, pod_ip: str, host_ip: str
) -> dict[str, str]:
    env: dict[str, str] = {
        "HOSTNAME": pod["metadata"]["name"],
        # Added to every container whatever enableServiceLinks says, as the kubelet does.
        "KUBERNETES_SERVICE_HOST": KUBERNETES_SERVICE_IP,
        "KUBERNETES_SERVICE_PORT": "443",
    }
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, key in (("configmaps", "configMapRef"), ("secrets", "secretRef")):
            if key in source:
                data = _object_data(lookup, kind, source[key]["name"])
                env.update({prefix + k: v for k, v in data.items()})
    for variable in container.get("env") or []:
        name = variable["name"]
        if "value" in variable:
            env[name] = expand(variable["value"], env)
            continue
        reference = variable.get("valueFrom") or {}
        if "configMapKeyRef" in reference or "secretKeyRef" in reference:
            kind, ref = (
                ("configmaps", reference["configMapKeyRef"])
                if "configMapKeyRef" in reference
                else ("secrets", reference["secretKeyRef"])
            )
            data = _object_data(lookup, kind, ref["name"])
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise MissingReference(f"{kind[:-1]} {ref['name']!r} has no key {ref['key']!r}")
            env[name] = data[ref["key"]]
        elif "fieldRef" in reference:
            env[name] = _field_value(pod, reference["fieldRef"]["fieldPath"], pod_ip, host_ip)
        elif "resourceFieldRef" in reference:
            field_ref = reference["resourceFieldRef"]
            env[name] = _resource_value(container, field_ref["resource"], field_ref.get("divisor"))
        else:
            env[name] = ""
    return env


class MissingReference(RuntimeError):
    """A ConfigMap, Secret or key the container needs is not there (yet): the kubelet's
    CreateContainerConfigError, retried until it appears."""


def plan_container(
    pod: dict[str, Any],
    container: dict[str, Any],
    image_map: ImageMap,
    runtime_env: dict[str, str],
    lookup: Lookup,
    pod_ip: str,
    host_ip: str,
    pod_dir: Path,
) -> ContainerPlan:
    name = container["name"]
    image = container.get("image", "")
    if not is_serving_image(image):
        raise UnmappableContainer(
            f"container {name!r}: image {image!r} is not the serving image; the pod runner "
            "runs only the project's image, whose paths it maps to this checkout"
        )
    pod_security = pod["spec"].get("securityContext") or {}
    security = container.get("securityContext") or {}
    uid = security.get("runAsUser", pod_security.get("runAsUser"))
    gid = security.get("runAsGroup", pod_security.get("runAsGroup", uid))
    if uid is None:
        raise UnmappableContainer(
            f"container {name!r}: no runAsUser; the image's user cannot be read without the image"
        )
    groups = [g for g in [pod_security.get("fsGroup"), *pod_security.get("supplementalGroups", [])]
              if g is not None]  # fmt: skip
    if "ephemeralContainers" in pod["spec"]:
        raise UnmappableContainer("ephemeral containers are not supported by the runner")

    env = dict(image_map.image_env)
    env.update(runtime_env)
    env.update(container_env(pod, container, lookup, pod_ip, host_ip))
    command = container.get("command")
    if not command:
        raise UnmappableContainer(
            f"container {name!r}: no command; the image's entrypoint is not known to the runner"
        )
    argv = [expand(part, env) for part in [*command, *(container.get("args") or [])]]
    argv = _host_command(argv, image_map, name, env)

    volumes = {v["name"]: v for v in pod["spec"].get("volumes") or []}
    mounts: list[Mount] = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes[mount["name"]]
        kind = next((k for k in volume if k != "name"), "")
        if kind not in SUPPORTED_VOLUMES:
            raise UnmappableContainer(
                f"container {name!r}: volume {mount['name']!r} of type {kind!r} is not supported"
            )
        if not Path(mount["mountPath"]).is_dir():
            raise UnmappableContainer(
                f"container {name!r}: mountPath {mount['mountPath']!r} does not exist on this "
                "host, and without an image root there is nowhere to create it"
            )
        empty_dir = volume["emptyDir"] or {}
        size = empty_dir.get("sizeLimit")
        if empty_dir.get("medium") == "Memory":
            mounts.append(Mount(mount["mountPath"], int(quantity(size)) if size else None, None))
        else:
            folder = pod_dir / "volumes" / mount["name"]
            mounts.append(Mount(mount["mountPath"], None, folder))

    ports = {
        p["name"]: int(p["containerPort"]) for p in container.get("ports") or [] if "name" in p
    }
    limits = (container.get("resources") or {}).get("limits") or {}
    lifecycle = container.get("lifecycle") or {}
    if lifecycle.get("postStart"):
        raise UnmappableContainer(f"container {name!r}: postStart hooks are not supported")
    pre_stop = lifecycle.get("preStop") or {}
    if pre_stop and "exec" not in pre_stop:
        raise UnmappableContainer(f"container {name!r}: only exec preStop hooks are supported")
    capabilities = security.get("capabilities") or {}

    def probe(role: str, key: str) -> Probe | None:
        spec = container.get(key)
        if not spec:
            return None
        parsed = Probe.from_spec(spec, name, role)
        if parsed.kind != "exec":
            return parsed
        # The kubelet expands $(VAR) in exec probe commands from the container's env.
        command = [expand(part, env) for part in parsed.spec["command"]]
        mapped = {"command": _host_command(command, image_map, name, env)}
        return dataclasses.replace(parsed, spec=mapped)

    return ContainerPlan(
        name=name,
        image=image,
        argv=argv,
        env=env,
        uid=int(uid),
        gid=int(gid),
        groups=[int(g) for g in groups],
        no_new_privileges=security.get("allowPrivilegeEscalation") is False,
        drop_all_capabilities="ALL" in (capabilities.get("drop") or []),
        read_only_root=bool(security.get("readOnlyRootFilesystem")),
        mounts=mounts,
        ports=ports,
        startup=probe("startup", "startupProbe"),
        readiness=probe("readiness", "readinessProbe"),
        liveness=probe("liveness", "livenessProbe"),
        pre_stop=(
            _host_command(pre_stop["exec"]["command"], image_map, name, env) if pre_stop else None
        ),
        cpu_limit=quantity(limits["cpu"]) if "cpu" in limits else None,
        memory_limit_bytes=int(quantity(limits["memory"])) if "memory" in limits else None,
        sidecar=container.get("restartPolicy") == "Always",
        host_paths=_host_paths(image_map, env, pod_dir),
    )


def _host_paths(image_map: ImageMap, env: dict[str, str], pod_dir: Path) -> list[str]:
    """The outermost host folders behind the container's mapped paths and its environment."""
    candidates = {str(path) for path in image_map.host_roots}
    candidates |= {str(path.parent) for path in image_map.files.values()}
    candidates |= {str(path) for path in image_map.folders.values()}
    candidates |= {str(pod_dir), env.get("VIRTUAL_ENV", "")}
    candidates |= set(env.get("LD_LIBRARY_PATH", "").split(os.pathsep))
    absolute = sorted(c for c in candidates if c.startswith("/") and c != "/")
    return [c for c in absolute if not any(c.startswith(o + "/") for o in absolute if o != c)]
