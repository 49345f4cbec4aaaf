"""The shutdown and probe timings of the rendered Deployment, which the local scenarios replay.

Read from `kubectl kustomize kustomize/overlays/<overlay>`, not copied: if the manifests change
their preStop hook, probes, grace period or Triton flags, the scenarios follow (or fail loudly
when a value they need has gone).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_tools.manifests.render import render
from inference_tools.paths import KUSTOMIZE_DIR
from pod_hooks.model_roles import ADMIN_KEY_ENV

DEFAULT_OVERLAY = "cpu"
CONTAINER = "triton"
# How the container spec writes the key into Triton's flags (its env var, expanded by Kubernetes).
ADMIN_KEY_VARIABLE = f"$({ADMIN_KEY_ENV})"


@dataclass(frozen=True)
class Probe:
    period_s: float
    failure_threshold: int
    timeout_s: float
    canary: bool  # runs triton-probe (an inference request), not Triton's health endpoints

    @property
    def detection_s(self) -> float:
        """The longest a failure can go unnoticed: `failure_threshold` probes, `period_s` apart."""
        return self.period_s * self.failure_threshold


@dataclass(frozen=True)
class PodLifecycle:
    overlay: str
    termination_grace_s: float
    pre_stop: list[str]  # the preStop exec command, as written
    propagation_s: float  # the drain's --propagation-seconds
    drain_deadline_s: float  # the drain's --deadline-seconds
    exit_timeout_s: float  # tritonserver --exit-timeout-secs
    max_surge: int | str
    max_unavailable: int | str
    readiness: Probe
    liveness: Probe
    startup: Probe
    triton_args: list[str]

    def restricted_api_args(self, admin_key: str) -> list[str]:
        """The manifest's --http-restricted-api / --grpc-restricted-protocol, with a test key."""
        return [
            arg.replace(ADMIN_KEY_VARIABLE, admin_key)
            for arg in self.triton_args
            if arg.startswith(("--http-restricted-api=", "--grpc-restricted-protocol="))
        ]


def _option(arguments: list[str], name: str) -> str:
    prefix = f"{name}="
    values = [a[len(prefix) :] for a in arguments if a.startswith(prefix)]
    if len(values) != 1:
        raise LookupError(f"expected one {name}=... in {arguments}, found {len(values)}")
    return values[0]


def _probe(container: dict[str, Any], name: str) -> Probe:
    probe = container.get(name)
    if not probe:
        raise LookupError(f"the {CONTAINER} container has no {name}")
    # Kubernetes' defaults where the manifest leaves a field out.
    return Probe(
        period_s=float(probe.get("periodSeconds", 10)),
        failure_threshold=int(probe.get("failureThreshold", 3)),
        timeout_s=float(probe.get("timeoutSeconds", 1)),
        canary=any(
            str(part).endswith("/triton-probe") for part in probe.get("exec", {}).get("command", [])
        ),
    )


def pod_lifecycle(
    overlay: str = DEFAULT_OVERLAY, kustomize_dir: Path = KUSTOMIZE_DIR
) -> PodLifecycle:
    rendered = render(kustomize_dir / "overlays" / overlay, overlay)
    deployment = rendered.one("Deployment", "triton")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = [c for c in pod["containers"] if c["name"] == CONTAINER]
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    args = [str(a) for a in container.get("args", [])]
    rolling = deployment["spec"].get("strategy", {}).get("rollingUpdate", {})
    return PodLifecycle(
        overlay=overlay,
        termination_grace_s=float(pod.get("terminationGracePeriodSeconds", 30)),
        pre_stop=[str(part) for part in pre_stop],
        propagation_s=float(_option(pre_stop, "--propagation-seconds")),
        drain_deadline_s=float(_option(pre_stop, "--deadline-seconds")),
        exit_timeout_s=float(_option(args, "--exit-timeout-secs")),
        max_surge=rolling.get("maxSurge", "25%"),
        max_unavailable=rolling.get("maxUnavailable", "25%"),
        readiness=_probe(container, "readinessProbe"),
        liveness=_probe(container, "livenessProbe"),
        startup=_probe(container, "startupProbe"),
        triton_args=args,
    )
