"""A local stand-in for a Deployment behind a Service (not a cluster): Kubernetes' part in a
pod's life, replayed with local processes and the manifest's timings.

A replica is a local tritonserver started with the Deployment's own Triton flags. The proxy is
nginx. What the control plane does is played by plain functions, in the order and with the
waits the manifests give:

- `wait_until_ready`: the startup probe, then the readiness probe, at their periods;
- `delete_replica`: a pod deletion. Its endpoint leaves the proxy after `endpoint_delay_s`
  (the EndpointSlice update reaching the proxy), while the preStop hook (triton-drain, with the
  manifest's arguments) runs at once; then SIGTERM, then SIGKILL at the end of the grace period.
"""

from __future__ import annotations

import logging
import math
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from inference_tools.local_server import LocalTritonServer
from pod_hooks.drain import DrainResult, drain_server
from pod_hooks.health_probe import ProbeResult, probe

from lab.reliability.load import ClosedLoopLoad, LoadRecord
from lab.reliability.nginx import Endpoint, NginxProxy
from lab.reliability.pod_lifecycle import PodLifecycle

LOG = logging.getLogger(__name__)
# Flags that only make sense inside the container (paths, fixed ports) stay out.
CONTAINER_ONLY_FLAGS = ("--model-repository=", "--http-port=", "--grpc-port=", "--metrics-port=")
TEST_ADMIN_KEY = "local-admin-key"
# How long an EndpointSlice change takes to reach the proxies here (the manifests allow 10 s).
DEFAULT_ENDPOINT_DELAY_S = 2.0


def replica_flags(lifecycle: PodLifecycle, admin_key: str = TEST_ADMIN_KEY) -> list[str]:
    """The Deployment's tritonserver flags (admin key filled in), minus what the local runner
    sets itself."""
    container_only = [a for a in lifecycle.triton_args if a.startswith(CONTAINER_ONLY_FLAGS)]
    restricted = set(lifecycle.restricted_api_args(admin_key))
    kept = [a for a in lifecycle.triton_args if a not in container_only and "$(" not in a]
    return [*kept, *sorted(restricted)]


@dataclass
class Replica:
    name: str
    server: LocalTritonServer

    @property
    def endpoint(self) -> Endpoint:
        return Endpoint(http=self.server.http_url, grpc=self.server.grpc_url)

    @property
    def base_url(self) -> str:
        return f"http://{self.server.http_url}"

    def probe(self, lifecycle_probe_timeout_s: float, ready_first: bool) -> ProbeResult:
        return probe(
            self.base_url,
            timeout_s=lifecycle_probe_timeout_s,
            ready_first=ready_first,
            admin_key=TEST_ADMIN_KEY,
        )


def start_replica(
    name: str,
    model_repository: Path,
    lifecycle: PodLifecycle,
    work_dir: Path | None = None,
    extra_args: Sequence[str] = (),
) -> Replica:
    """Start the process; readiness is for `wait_until_ready` to establish, as the kubelet does."""
    server = LocalTritonServer(
        model_repository,
        work_dir=work_dir,
        extra_args=[*replica_flags(lifecycle), *extra_args],
        admin_key=TEST_ADMIN_KEY,
    )
    # The runner's own readiness wait only bounds the start; the probes decide when traffic comes.
    server.start(timeout_s=lifecycle.startup.period_s * lifecycle.startup.failure_threshold)
    return Replica(name, server)


def wait_until_ready(replica: Replica, lifecycle: PodLifecycle, started_at: float) -> float:
    """Replay the startup probe, at its period from the container's start, then the readiness
    probe. Returns the seconds from `started_at` until the replica would join the endpoints."""
    startup = lifecycle.startup
    deadline = started_at + startup.period_s * startup.failure_threshold
    # The kubelet probes at fixed times from the start: a server that became ready between two
    # probes waits for the next one.
    slots_passed = math.ceil((time.monotonic() - started_at) / startup.period_s)
    next_probe = started_at + slots_passed * startup.period_s
    while True:
        time.sleep(max(0.0, next_probe - time.monotonic()))
        if replica.probe(startup.timeout_s, ready_first=True).healthy:
            break
        next_probe += startup.period_s
        if next_probe > deadline:
            raise TimeoutError(f"{replica.name} failed its startup probe")
    # Readiness probes start once the startup probe has passed.
    while not replica.probe(lifecycle.readiness.timeout_s, ready_first=True).healthy:
        time.sleep(lifecycle.readiness.period_s)
    return time.monotonic() - started_at


@dataclass(frozen=True)
class Termination:
    replica: str
    pre_stop: bool
    drain: DrainResult | None
    pre_stop_s: float  # deletion to SIGTERM
    exit_s: float  # SIGTERM to the process's exit
    exit_status: int | None
    killed: bool  # the grace period ran out (SIGKILL)

    @property
    def total_s(self) -> float:
        return self.pre_stop_s + self.exit_s


def delete_replica(
    replica: Replica,
    lifecycle: PodLifecycle,
    remove_endpoint: Callable[[], None],
    *,
    pre_stop: bool = True,
    endpoint_delay_s: float = DEFAULT_ENDPOINT_DELAY_S,
) -> Termination:
    """Delete the pod: endpoint removal and the preStop hook start together, SIGTERM follows."""
    deleted_at = time.monotonic()
    endpoint_update = threading.Timer(endpoint_delay_s, remove_endpoint)
    endpoint_update.start()
    drain: DrainResult | None = None
    if pre_stop:
        drain = drain_server(
            replica.server.metrics_url,
            propagation_s=lifecycle.propagation_s,
            deadline_s=lifecycle.drain_deadline_s,
            http_url=replica.base_url,
            admin_key=replica.server.admin_key,
            log=lambda message: LOG.info("%s preStop: %s", replica.name, message),
        )
    sigterm_at = time.monotonic()
    process = replica.server.process
    assert process is not None
    process.send_signal(signal.SIGTERM)
    grace_left_s = max(0.0, lifecycle.termination_grace_s - (sigterm_at - deleted_at))
    killed = False
    try:
        process.wait(timeout=grace_left_s)
    except subprocess.TimeoutExpired:
        killed = True
        replica.server.stop(timeout_s=0)  # SIGKILL to the whole process group
    exited_at = time.monotonic()
    endpoint_update.join()
    return Termination(
        replica=replica.name,
        pre_stop=pre_stop,
        drain=drain,
        pre_stop_s=sigterm_at - deleted_at,
        exit_s=exited_at - sigterm_at,
        exit_status=process.returncode,
        killed=killed,
    )


class Endpoints:
    """The set of replicas the proxy routes to (a Service's ready endpoints)."""

    def __init__(self, proxy: NginxProxy) -> None:
        self.proxy = proxy
        self.replicas: list[Replica] = []
        self._lock = threading.Lock()

    def add(self, replica: Replica) -> None:
        with self._lock:
            self.replicas.append(replica)
            self.proxy.set_endpoints([r.endpoint for r in self.replicas])

    def remove(self, replica: Replica) -> None:
        with self._lock:
            self.replicas = [r for r in self.replicas if r is not replica]
            self.proxy.set_endpoints([r.endpoint for r in self.replicas])

    def remover(self, replica: Replica) -> Callable[[], None]:
        return lambda: self.remove(replica)


def tear_down(load: ClosedLoopLoad, replicas: Sequence[Replica], proxy: NginxProxy) -> LoadRecord:
    """Stop the clients first (so no request meets a stopping server), then servers and proxy."""
    record = load.stop()
    for replica in replicas:
        replica.server.stop()
    proxy.stop()
    return record
