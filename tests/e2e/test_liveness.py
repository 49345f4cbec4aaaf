"""A Triton pod whose Python-backend stub dies leaves the EndpointSlice within its readiness
probe's period x failureThreshold (Triton's own health endpoints stay 200 then: the canary
inference notices), and its liveness probe has the container restarted, ready again after."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from kubecluster import network
from kubecluster.kubeapi import KubeApi

from tests.e2e.conftest import Kubectl, wait_for
from tests.e2e.test_readiness import endpoints, pod_ready, triton_pods

pytestmark = pytest.mark.e2e

STUB = "triton_python_backend_stub"
RECOVERY_TIMEOUT_SECONDS = 300


def stub_pids(pod_uid: str) -> list[int]:
    found = []
    for pid in network.processes_in(network.namespace_name(pod_uid)):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].decode(errors="replace").endswith(STUB):
            found.append((pid, b" ".join(cmdline)))
    # The tokenizer's stub: every text_embedding request, the canary's included, passes it.
    return [pid for pid, cmdline in found if b"/tokenizer/" in cmdline]


def test_dead_stub_takes_the_pod_out_then_liveness_restarts_it(
    kubectl: Kubectl, api: KubeApi, cpu_release: None
) -> None:
    pod = wait_for(
        "a ready Triton pod",
        lambda: next((p for p in triton_pods(api) if pod_ready(p)), None),
        timeout=RECOVERY_TIMEOUT_SECONDS,
    )
    name, uid, address = pod["metadata"]["name"], pod["metadata"]["uid"], pod["status"]["podIP"]
    container = pod["spec"]["containers"][0]
    readiness, liveness = container["readinessProbe"], container["livenessProbe"]
    ready_budget = readiness["periodSeconds"] * readiness["failureThreshold"]
    restarts_before = pod["status"]["containerStatuses"][0]["restartCount"]
    pids = stub_pids(uid)
    assert pids, f"no tokenizer stub found in pod {name}'s namespaces"
    killed_at = time.monotonic()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)

    def current() -> dict:
        return next(p for p in triton_pods(api) if p["metadata"]["name"] == name)

    wait_for("the endpoint to stop being ready", lambda: not endpoints(api)[address].get("ready"),
             timeout=ready_budget + readiness["timeoutSeconds"] + 15)  # fmt: skip
    out_after = time.monotonic() - killed_at

    def restarted() -> bool:
        statuses = current()["status"]["containerStatuses"]
        return statuses[0]["restartCount"] > restarts_before

    wait_for("the liveness restart", restarted, timeout=RECOVERY_TIMEOUT_SECONDS)
    restarted_after = time.monotonic() - killed_at
    wait_for("the endpoint to be ready again", lambda: endpoints(api).get(address, {}).get("ready"),
             timeout=RECOVERY_TIMEOUT_SECONDS)  # fmt: skip
    back_after = time.monotonic() - killed_at
    last = current()["status"]["containerStatuses"][0].get("lastState", {}).get("terminated", {})
    print(
        f"\nstub killed in {name}: endpoint not ready after {out_after:.1f} s (readiness budget "
        f"{ready_budget} s = period x failureThreshold), container restarted after "
        f"{restarted_after:.1f} s (liveness {liveness['periodSeconds']} s x "
        f"{liveness['failureThreshold']}), ready again after {back_after:.1f} s; "
        f"last termination: {last.get('reason')}, {last.get('message', '')[:70]}"
    )
    assert out_after <= ready_budget + readiness["timeoutSeconds"] + 3
