"""A Python-backend stub dies under load: who notices, how many requests fail, what recovers.

Two replicas behind nginx take client load; the `tokenizer` stub of one is killed (SIGKILL, as
the kernel's OOM killer would). Then the kubelet's part is replayed with the manifest's probe
periods and thresholds:

- readiness: after `failureThreshold` failed probes the replica leaves the proxy's endpoints;
- liveness: after `failureThreshold` failed probes the container is restarted (preStop drain,
  SIGTERM, grace period, a fresh process, startup and readiness probes, back in the endpoints).

`canary=True` probes with `pod_hooks.health_probe` (a real inference request);
`canary=False` probes Triton's own /v2/health/ready and /v2/health/live, which is the control:
on 2.51 both keep answering 200 with a dead stub, so nothing is ever detected.
Probes fire half a period after the kill: the average phase of a periodic probe.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from dataclasses import asdict
from pathlib import Path

from pod_hooks.health_probe import ProbeResult, check_ready

from lab.reliability.load import ClosedLoopLoad
from lab.reliability.local_replicas import (
    Endpoints,
    Replica,
    delete_replica,
    start_replica,
    tear_down,
    wait_until_ready,
)
from lab.reliability.nginx import NginxProxy
from lab.reliability.pod_lifecycle import PodLifecycle
from lab.reliability.processes import stub_pid
from lab.reliability.report import ScenarioResult
from python_backend.contract import TOKENIZER

LOG = logging.getLogger(__name__)
TICK_S = 0.1
# Requests already inside the broken replica when it leaves the endpoints still fail.
IN_FLIGHT_ALLOWANCE_S = 1.0


def _triton_live(replica: Replica, timeout_s: float) -> ProbeResult:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"{replica.base_url}/v2/health/live", timeout=timeout_s):
            return ProbeResult(True, "live")
    except (urllib.error.URLError, OSError) as error:
        return ProbeResult(False, str(error))


def run(
    model_repository: Path,
    lifecycle: PodLifecycle,
    *,
    canary: bool = True,
    model: str = TOKENIZER,
    workers_per_protocol: int = 3,
    settle_s: float = 3.0,
    observe_s: float | None = None,
    work_dir: Path | None = None,
) -> ScenarioResult:
    """Kill `model`'s stub in one of two replicas; replay the probes for up to `observe_s`."""
    readiness, liveness = lifecycle.readiness, lifecycle.liveness
    if observe_s is None:
        # Long enough for liveness to fire, the restart to finish and the new process to start.
        observe_s = (
            liveness.detection_s + lifecycle.termination_grace_s + lifecycle.startup.period_s * 3
        )
    proxy = NginxProxy().start()
    endpoints = Endpoints(proxy)
    live = [start_replica(f"replica-{i}", model_repository, lifecycle, work_dir) for i in range(2)]
    for replica in live:
        endpoints.add(replica)
    victim = live[0]
    load = ClosedLoopLoad(
        {"http": proxy.http_url, "grpc": proxy.grpc_url}, workers=workers_per_protocol
    )
    triton_ready_codes: list[str] = []
    removed_after_s: float | None = None
    restarted_after_s: float | None = None
    termination = None
    killed_at = 0.0
    try:
        load.start()
        time.sleep(settle_s)
        os.kill(stub_pid(victim.server.process.pid, model), signal.SIGKILL)  # type: ignore[union-attr]
        killed_at = time.monotonic()
        kill_offset_s = killed_at - load.record.started_at
        LOG.info("killed the %s stub of %s", model, victim.name)
        next_ready = killed_at + readiness.period_s / 2
        next_live = killed_at + liveness.period_s / 2
        ready_failures = live_failures = 0
        while time.monotonic() - killed_at < observe_s:
            now = time.monotonic()
            if now >= next_ready:
                next_ready += readiness.period_s
                triton_ready_codes.append(check_ready(victim.base_url, readiness.timeout_s).reason)
                result = (
                    victim.probe(readiness.timeout_s, ready_first=True)
                    if canary
                    else check_ready(victim.base_url, readiness.timeout_s)
                )
                ready_failures = 0 if result.healthy else ready_failures + 1
                if ready_failures >= readiness.failure_threshold and removed_after_s is None:
                    endpoints.remove(victim)
                    removed_after_s = time.monotonic() - killed_at
                    LOG.info("readiness failed (%s): out of the endpoints", result.reason)
            if now >= next_live:
                next_live += liveness.period_s
                result = (
                    victim.probe(liveness.timeout_s, ready_first=False)
                    if canary
                    else _triton_live(victim, liveness.timeout_s)
                )
                live_failures = 0 if result.healthy else live_failures + 1
                if live_failures >= liveness.failure_threshold:
                    LOG.info("liveness failed (%s): restarting the container", result.reason)
                    termination = delete_replica(
                        victim, lifecycle, lambda: None, endpoint_delay_s=0.0
                    )
                    started = time.monotonic()
                    live.remove(victim)
                    victim = start_replica(victim.name, model_repository, lifecycle, work_dir)
                    live.append(victim)
                    wait_until_ready(victim, lifecycle, started)
                    endpoints.add(victim)
                    restarted_after_s = time.monotonic() - killed_at
                    break
            time.sleep(TICK_S)
        time.sleep(settle_s)
    finally:
        record = tear_down(load, live, proxy)

    failures = record.failures()
    after_kill = [o for o in failures if o.sent_at_s >= kill_offset_s]
    last_failure_s = max((o.sent_at_s for o in after_kill), default=kill_offset_s) - kill_offset_s
    late = (
        [
            o
            for o in after_kill
            if o.sent_at_s - kill_offset_s > removed_after_s + IN_FLIGHT_ALLOWANCE_S
        ]
        if removed_after_s is not None
        else after_kill
    )
    triton_said_ready = all(code == "ready" for code in triton_ready_codes)
    if canary:
        passed = removed_after_s is not None and restarted_after_s is not None and not late
    else:
        passed = removed_after_s is None and bool(late)
    return ScenarioResult(
        scenario="Python-backend stub killed"
        + ("" if canary else ", Triton's own health endpoints as probes (control)"),
        load=f"{workers_per_protocol} HTTP + {workers_per_protocol} gRPC clients via nginx, "
        "2 replicas",
        faults=f"SIGKILL to the {model} stub of one replica",
        requests_sent=record.sent,
        requests_failed=len(failures),
        recovery_s=last_failure_s if canary and not late else None,
        passed=passed,
        notes=(
            f"out of the endpoints after {removed_after_s:.1f} s, restarted and serving after "
            f"{restarted_after_s:.1f} s"
            if canary and removed_after_s is not None and restarted_after_s is not None
            else f"never detected in {observe_s:.0f} s; failures continued"
        )
        + ("; Triton's /v2/health/ready said ready throughout" if triton_said_ready else ""),
        details={
            "removed_after_s": removed_after_s,
            "restarted_after_s": restarted_after_s,
            "last_failure_after_kill_s": last_failure_s,
            "failures_after_removal": len(late),
            "triton_ready_answers": triton_ready_codes,
            "termination": asdict(termination) if termination else None,
            "failures": record.failure_summary(),
        },
    )
