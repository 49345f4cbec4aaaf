"""The http-guard native sidecar (an init container with restartPolicy: Always) as the pod runner
runs it, the kubelet's order: up and past its startup probe before Triton starts, restarted
alone when it dies while Triton keeps running, and stopped only after Triton has exited when
the pod is deleted, so the preStop drain and Triton's last answers still pass through it."""

from __future__ import annotations

import os
import re
import signal
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import ClusterLayout

from tests.e2e.conftest import NAMESPACE, Kubectl, wait_for
from tests.e2e.test_readiness import pod_ready, serving_pod, triton_pods

pytestmark = pytest.mark.e2e

GUARD = "http-guard"
TRITON = "triton"
TIMEOUT_SECONDS = 300
RUNNER_LINE = re.compile(r"^(\S+Z) ([^/\s]+)/([^/\s:]+)(?:/([^:\s]+))?: (.*)$")


@dataclass(frozen=True)
class RunnerEvent:
    at: datetime
    container: str | None
    text: str


def runner_events(layout: ClusterLayout, pod: str) -> list[RunnerEvent]:
    """The pod runner's log lines about one pod, oldest first."""
    events = []
    for line in Path(layout.log_file("pod-runner")).read_text().splitlines():
        match = RUNNER_LINE.match(line)
        if match and match.group(2) == NAMESPACE and match.group(3) == pod:
            stamp = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%fZ")
            events.append(RunnerEvent(stamp, match.group(4), match.group(5)))
    return events


def first(events: list[RunnerEvent], container: str, prefix: str) -> RunnerEvent:
    found = [e for e in events if e.container == container and e.text.startswith(prefix)]
    assert found, f"no {container!r} event starting {prefix!r}"
    return found[0]


def status_of(pod: dict[str, Any], name: str, key: str) -> dict[str, Any]:
    return next(s for s in pod["status"].get(key) or [] if s["name"] == name)


def test_the_http_guard_starts_first_restarts_alone_and_stops_after_triton(
    kubectl: Kubectl, api: KubeApi, cluster: ClusterLayout, cpu_release: None
) -> None:
    # Whatever rollout an earlier scenario left running ends first; a pod already being
    # deleted (still Ready while it drains) is not the one to watch.
    kubectl.run("rollout", "status", "deployment/triton", f"--namespace={NAMESPACE}",
                f"--timeout={TIMEOUT_SECONDS}s")  # fmt: skip
    pod = wait_for("a ready Triton pod", lambda: serving_pod(api), timeout=TIMEOUT_SECONDS)
    name = pod["metadata"]["name"]
    assert [c["name"] for c in pod["spec"]["initContainers"]] == [GUARD]
    guard_status = status_of(pod, GUARD, "initContainerStatuses")
    assert guard_status["started"] and guard_status["ready"], guard_status

    # Start order: Triton's container is created only once the guard's startup probe passed.
    events = runner_events(cluster, name)
    guard_started = first(events, GUARD, "started")
    triton_started = first(events, TRITON, "started")
    start_gap = (triton_started.at - guard_started.at).total_seconds()
    assert start_gap > 0

    # The guard dies: it alone is restarted (the first restart at once), Triton runs on.
    guard_pid = int(guard_started.text.rsplit(" ", 1)[1])
    restarts = guard_status["restartCount"]
    triton_restarts = status_of(pod, TRITON, "containerStatuses")["restartCount"]
    killed_at = time.monotonic()
    os.kill(guard_pid, signal.SIGKILL)

    def current() -> dict[str, Any]:
        return next(p for p in triton_pods(api) if p["metadata"]["name"] == name)

    def guard_back() -> bool:
        guard = status_of(current(), GUARD, "initContainerStatuses")
        return guard["restartCount"] > restarts and guard["started"]

    wait_for("the guard's restart", guard_back, timeout=TIMEOUT_SECONDS)
    guard_back_after = time.monotonic() - killed_at
    wait_for("the pod Ready again", lambda: pod_ready(current()), timeout=TIMEOUT_SECONDS)
    ready_after = time.monotonic() - killed_at
    assert status_of(current(), TRITON, "containerStatuses")["restartCount"] == triton_restarts

    # Deletion: Triton's preStop and SIGTERM first; the guard's SIGTERM only once Triton exited.
    deleted_at = time.monotonic()
    kubectl.run("delete", "pod", name, f"--namespace={NAMESPACE}", "--wait=false")
    wait_for("the pod object to go",
             lambda: all(p["metadata"]["name"] != name for p in triton_pods(api)),
             timeout=TIMEOUT_SECONDS)  # fmt: skip
    gone_after = time.monotonic() - deleted_at
    events = runner_events(cluster, name)
    triton_exited = first(events, TRITON, "exited")
    guard_term = [e for e in events if e.container == GUARD and e.text.startswith("SIGTERM")]
    assert len(guard_term) == 1, guard_term
    drain = first(events, TRITON, "preStop exit")
    lag = (guard_term[0].at - triton_exited.at).total_seconds()
    print(
        f"\nsidecar {GUARD} in {name}: Triton started {start_gap:.1f} s after the guard (its "
        f"startup probe); guard SIGKILLed: restarted and started after {guard_back_after:.1f} s, "
        f"pod Ready after {ready_after:.1f} s, Triton's restarts unchanged ({triton_restarts}); "
        f"deleted: Triton's {drain.text}, the guard's SIGTERM {lag:.2f} s after Triton exited, "
        f"pod object gone after {gone_after:.1f} s"
    )
    assert lag >= 0
    assert triton_exited.at >= drain.at
