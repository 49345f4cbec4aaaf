"""Rolling restart behind a real proxy: replace every replica under load, count failed requests.

The Deployment's strategy (maxSurge 1, maxUnavailable 0) replayed locally: start a new replica,
let it pass its startup and readiness probes, add it to the proxy, then delete one old replica
(endpoint removal + preStop drain + SIGTERM + grace period), and so on until none is left. With
`pre_stop=False` the drain is skipped, which is what a pod without the hook gets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

from lab.reliability.load import ClosedLoopLoad
from lab.reliability.local_replicas import (
    DEFAULT_ENDPOINT_DELAY_S,
    Endpoints,
    Replica,
    Termination,
    delete_replica,
    start_replica,
    tear_down,
    wait_until_ready,
)
from lab.reliability.nginx import NginxProxy
from lab.reliability.pod_lifecycle import PodLifecycle
from lab.reliability.report import ScenarioResult

LOG = logging.getLogger(__name__)


def run(
    model_repository: Path,
    lifecycle: PodLifecycle,
    *,
    replicas: int = 2,
    replacements: int | None = None,
    pre_stop: bool = True,
    workers_per_protocol: int = 3,
    texts_per_request: int = 4,
    settle_s: float = 3.0,
    endpoint_delay_s: float = DEFAULT_ENDPOINT_DELAY_S,
    grpc_retry: bool = False,
    work_dir: Path | None = None,
) -> ScenarioResult:
    """Replace `replacements` replicas (default: all) while clients send over HTTP and gRPC.

    `grpc_retry`: the gRPC clients retry UNAVAILABLE (inference_tools.grpc_retry)."""
    replacements = replicas if replacements is None else replacements
    proxy = NginxProxy().start()
    endpoints = Endpoints(proxy)
    live: list[Replica] = []
    terminations: list[Termination] = []
    ready_after_s: list[float] = []
    load = ClosedLoopLoad(
        {"http": proxy.http_url, "grpc": proxy.grpc_url},
        workers=workers_per_protocol,
        texts_per_request=texts_per_request,
        grpc_retry=grpc_retry,
    )
    try:
        # The replicas running before the rollout: no probe timings to replay.
        for index in range(replicas):
            replica = start_replica(f"old-{index}", model_repository, lifecycle, work_dir)
            live.append(replica)
            endpoints.add(replica)
        load.start()
        time.sleep(settle_s)
        for index in range(replacements):
            started = time.monotonic()
            new = start_replica(f"new-{index}", model_repository, lifecycle, work_dir)
            live.append(new)
            ready_after_s.append(wait_until_ready(new, lifecycle, started))
            endpoints.add(new)
            old = live.pop(0)
            LOG.info("deleting %s (preStop %s)", old.name, "on" if pre_stop else "off")
            terminations.append(
                delete_replica(
                    old,
                    lifecycle,
                    endpoints.remover(old),
                    pre_stop=pre_stop,
                    endpoint_delay_s=endpoint_delay_s,
                )
            )
        time.sleep(settle_s)
    finally:
        record = tear_down(load, live, proxy)

    failed = len(record.failures())
    grace = lifecycle.termination_grace_s
    within_grace = all(not t.killed and t.total_s < grace for t in terminations)
    passed = (failed == 0 and within_grace) if pre_stop else failed > 0
    label = (
        "rolling restart"
        + ("" if pre_stop else " without preStop drain (control)")
        + (", gRPC clients retrying" if grpc_retry else "")
    )
    return ScenarioResult(
        scenario=label,
        load=f"{workers_per_protocol} HTTP + {workers_per_protocol} gRPC clients via nginx "
        f"({texts_per_request} texts per request), {replicas} replicas",
        faults=f"{replacements} replica(s) replaced: "
        + (
            f"preStop drain {lifecycle.propagation_s:g} s + idle, SIGTERM, "
            f"--exit-timeout-secs={lifecycle.exit_timeout_s:g}"
            if pre_stop
            else "SIGTERM at deletion"
        ),
        requests_sent=record.sent,
        requests_failed=failed,
        recovery_s=None,
        passed=passed,
        notes=("" if pre_stop else "failures show the test detects a missing drain")
        + (f"; outcomes {dict(record.by_status())}" if grpc_retry else ""),
        details={
            "failures": record.failure_summary(),
            "by_status": dict(record.by_status()),
            "terminations": [asdict(t) for t in terminations],
            "ready_after_s": ready_after_s,
            "termination_grace_s": grace,
        },
    )
