"""The kubelet's job for pods bound to one node, done by real processes on this machine.

It registers its Node and keeps the node's Lease renewed (so the node lifecycle controller sees
a healthy node), runs each bound pod in a network namespace of its own at a pod IP on the host
bridge, runs the startup, readiness and liveness probes as the spec says and writes the pod's
status, so the EndpointSlice controller follows real readiness. Init containers run first, in
order: a plain one to completion, a native sidecar (restartPolicy: Always) until its startup
probe passes, and it then runs beside the main containers. A deleted pod gets its preStop hooks,
then SIGTERM, then SIGKILL when terminationGracePeriodSeconds runs out, sidecars only once the
main containers have exited; then the runner deletes the pod object, as the kubelet does.
docs/cluster.md lists what it does differently.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from kubecluster import network
from kubecluster.containers import (
    RunningContainer,
    exec_in,
    kill_container,
    run_probe,
    signal_container,
    start_container,
)
from kubecluster.image_map import ImageMap, UnmappableContainer, serving_image_map
from kubecluster.kubeapi import ApiError, KubeApi
from kubecluster.layout import (
    BRIDGE_ADDRESS,
    CHECKOUT,
    NODE_NAME,
    POD_SUBNET_PREFIX,
    ClusterLayout,
    pinned_versions,
)
from kubecluster.pod_spec import ContainerPlan, MissingReference, Probe, plan_container

LEASE_DURATION_SECONDS = 40
LEASE_RENEW_SECONDS = 10
NODE_STATUS_SECONDS = 60
POLL_SECONDS = 0.5
# The kubelet's crash-loop back-off: 10 s doubling to 5 minutes.
BACKOFF_START_SECONDS = 10.0
BACKOFF_MAX_SECONDS = 300.0
BACKOFF_RESET_SECONDS = 600.0
# Past the grace period the kubelet gives a preStop hook that used it all 2 s more for SIGTERM.
PRESTOP_OVERRUN_SECONDS = 2.0
STANDARD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def log(message: str) -> None:
    print(f"{now_micro()} {message}", flush=True)


@dataclass
class ContainerState:
    """What the status reports for one container, updated by its worker thread."""

    name: str
    image: str
    # "init" (runs to completion), "sidecar" (init with restartPolicy: Always) or "main".
    role: str = "main"
    restart_count: int = 0
    ready: bool = False
    started: bool = False
    running_since: str | None = None
    waiting: tuple[str, str] | None = ("ContainerCreating", "")
    last_terminated: dict[str, Any] | None = None
    terminated: dict[str, Any] | None = None

    def as_status(self) -> dict[str, Any]:
        if self.terminated is not None:
            state: dict[str, Any] = {"terminated": self.terminated}
        elif self.running_since is not None and self.waiting is None:
            state = {"running": {"startedAt": self.running_since}}
        else:
            reason, message = self.waiting or ("ContainerCreating", "")
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        status: dict[str, Any] = {
            "name": self.name,
            "image": self.image,
            "imageID": "",
            "ready": self.ready,
            "started": self.started,
            "restartCount": self.restart_count,
            "state": state,
        }
        if self.last_terminated is not None:
            status["lastState"] = {"terminated": self.last_terminated}
        return status


class IpPool:
    def __init__(self) -> None:
        self._free = [f"{POD_SUBNET_PREFIX}.{n}" for n in range(2, 255)]
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            return self._free.pop(0)

    def give_back(self, address: str) -> None:
        with self._lock:
            self._free.append(address)


@dataclass
class PodWorker:
    """One pod: its network, one thread per container, its status."""

    runner: PodRunner
    pod: dict[str, Any]
    pod_ip: str
    states: dict[str, ContainerState] = field(default_factory=dict)
    running: dict[str, RunningContainer] = field(default_factory=dict)
    terminating: threading.Event = field(default_factory=threading.Event)
    killed: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # One status write at a time, computed and sent together: two probe threads computing
    # concurrently could send the older status last (a restarted sidecar then stayed unready
    # in the API while ready here, and nothing changed to write it again).
    status_lock: threading.Lock = field(default_factory=threading.Lock)
    start_time: str = field(default_factory=now_rfc3339)
    network_ready: bool = False
    # Every plain init container has completed and every sidecar has started.
    initialized: bool = False
    # Set when a container has exited for good: sidecars wait on these before they stop.
    exited: dict[str, threading.Event] = field(default_factory=dict)
    namespace: str = ""
    last_status: str = ""
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.pod['metadata']['namespace']}/{self.pod['metadata']['name']}"

    @property
    def uid(self) -> str:
        return str(self.pod["metadata"]["uid"])

    @property
    def folder(self) -> Path:
        meta = self.pod["metadata"]
        return (
            self.runner.cluster_dir / "pods" / f"{meta['namespace']}_{meta['name']}_{self.uid[:8]}"
        )

    def start(self) -> None:
        for container in self.init_containers:
            role = "sidecar" if container.get("restartPolicy") == "Always" else "init"
            self.states[container["name"]] = ContainerState(
                container["name"], container["image"], role
            )
        for container in self.pod["spec"]["containers"]:
            self.states[container["name"]] = ContainerState(
                container["name"], container["image"],
                waiting=(
                    ("PodInitializing", "") if self.init_containers else ("ContainerCreating", "")
                ),
            )  # fmt: skip
        self.exited = {name: threading.Event() for name in self.states}
        threading.Thread(target=self._run, name=f"pod {self.key}", daemon=True).start()

    @property
    def init_containers(self) -> list[dict[str, Any]]:
        return list(self.pod["spec"].get("initContainers") or [])

    # -- lifecycle ----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self.namespace = network.create_pod_network(self.uid, self.pod_ip)
            self.network_ready = True
            self.write_status()
            sidecars = self._run_init_containers()
            main: list[threading.Thread] = []
            if not self.terminating.is_set():
                self.initialized = True
                self.write_status()
                main = [self._container_thread(c) for c in self.pod["spec"]["containers"]]
            else:
                # Deleted before its main containers started: the sidecars need not wait.
                for container in self.pod["spec"]["containers"]:
                    self.exited[container["name"]].set()
            for thread in [*main, *sidecars]:
                thread.join()
        except Exception:
            log(f"{self.key}: worker failed:\n{traceback.format_exc()}")
        finally:
            self._finish()

    def _finish(self) -> None:
        try:
            if not self.killed.is_set():
                self.write_status()
                if self.terminating.is_set():
                    # The kubelet's last word on a deleted pod: remove the object for good.
                    meta = self.pod["metadata"]
                    self.runner.api.delete(
                        f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                        {"gracePeriodSeconds": 0, "preconditions": {"uid": self.uid}},
                    )
        except ApiError as error:
            if error.status not in (404, 409):
                log(f"{self.key}: final delete failed: {error}")
        finally:
            network.delete_pod_network(self.uid)
            self.runner.ips.give_back(self.pod_ip)
            self.done.set()
            log(f"{self.key}: gone")

    def request_termination(self, pod: dict[str, Any]) -> None:
        if not self.terminating.is_set():
            self.pod = pod
            log(f"{self.key}: deletion requested, grace {self.grace_seconds():.0f} s")
            self.terminating.set()

    def kill_now(self) -> None:
        self.killed.set()
        self.terminating.set()
        with self.lock:
            for container in list(self.running.values()):
                kill_container(container)

    def grace_seconds(self) -> float:
        meta = self.pod["metadata"]
        grace = meta.get("deletionGracePeriodSeconds")
        if grace is None:
            grace = self.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return float(grace)

    # -- containers ---------------------------------------------------------------------------

    def _container_thread(self, container: dict[str, Any]) -> threading.Thread:
        thread = threading.Thread(target=self._container_loop, args=(container,), daemon=True,
                                  name=f"{self.key}/{container['name']}")  # fmt: skip
        thread.start()
        return thread

    def _run_init_containers(self) -> list[threading.Thread]:
        """The kubelet's start order: each init container in turn; a plain one must exit 0
        before the next starts, a sidecar must have started (its startup probe passed, or
        running where it has none) and then keeps running. Returns the sidecars' threads."""
        sidecars: list[threading.Thread] = []
        for container in self.init_containers:
            name = container["name"]
            state = self.states[name]
            if self.terminating.is_set():
                self.exited[name].set()
                continue
            thread = self._container_thread(container)
            if state.role == "sidecar":
                sidecars.append(thread)
                while not (state.started or self.exited[name].is_set()):
                    if self.terminating.wait(0.1):
                        break
            else:
                thread.join()
            through = state.started if state.role == "sidecar" else state.terminated is not None
            if not through:
                # Refused, or stopped by the deletion: nothing after it starts.
                self.terminating.wait()
        return sidecars

    def _lookup(self, kind: str, name: str) -> dict[str, Any]:
        namespace = self.pod["metadata"]["namespace"]
        try:
            return dict(self.runner.api.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}"))
        except ApiError as error:
            if error.status == 404:
                raise MissingReference(f"{kind[:-1]} {name!r} not found") from None
            raise

    def _plan(self, container: dict[str, Any]) -> ContainerPlan | None:
        state = self.states[container["name"]]
        while not self.terminating.is_set():
            try:
                return plan_container(
                    self.pod, container, self.runner.image_map, self.runner.runtime_env,
                    self._lookup, self.pod_ip, BRIDGE_ADDRESS, self.folder,
                )  # fmt: skip
            except UnmappableContainer as error:
                log(f"{self.key}: refused: {error}")
                state.waiting = ("CreateContainerError", f"pod runner: {error}")
                self.write_status()
                return None
            except MissingReference as error:
                # The kubelet retries until the ConfigMap or Secret appears.
                state.waiting = ("CreateContainerConfigError", str(error))
                self.write_status()
                self.terminating.wait(2.0)
        return None

    def _container_loop(self, container: dict[str, Any]) -> None:
        name = container["name"]
        state = self.states[name]
        plan = self._plan(container)
        if plan is None:
            self.exited[name].set()
            return
        # The kubelet restarts at once the first time, then backs off 10 s, 20 s, ... 5 min,
        # and forgets the back-off after a container has run for 10 minutes.
        backoff = 0.0
        while not self.terminating.is_set():
            log_file = self.folder / f"{name}.log"
            with self.lock:
                if self.terminating.is_set():
                    break
                running = start_container(
                    plan, self.namespace, self.pod["metadata"]["name"], log_file
                )
                self.running[name] = running
            log(f"{self.key}/{name}: started, pid 1 of the container is host pid {running.pid1}")
            state.waiting = None
            state.running_since = now_rfc3339()
            state.started = plan.startup is None
            state.ready = False
            self.write_status()
            restart_reason = self._supervise(plan, running, state)
            exit_code = running.exited()
            if exit_code is None or exit_code < 0:
                # Killed by a signal: the runtime's convention, 128 + the signal's number.
                exit_code = 128 + (-exit_code if exit_code else 9)
            state.last_terminated = {
                "exitCode": exit_code,
                "reason": "Completed" if exit_code == 0 else "Error",
                **({"message": restart_reason} if restart_reason else {}),
                "startedAt": state.running_since,
                "finishedAt": now_rfc3339(),
            }
            state.ready = False
            state.started = False
            if state.role == "init" and exit_code == 0:
                # A plain init container that completed is done for good; the kubelet
                # reports it ready.
                state.terminated, state.last_terminated = state.last_terminated, None
                state.ready = True
                break
            if self.terminating.is_set():
                state.terminated = state.last_terminated
                state.last_terminated = None
                break
            state.restart_count += 1
            state.running_since = None
            ran_for = time.monotonic() - running.started_at
            backoff = 0.0 if ran_for > BACKOFF_RESET_SECONDS else backoff
            if backoff:
                state.waiting = ("CrashLoopBackOff", f"back-off {backoff:.0f}s restarting {name}")
            self.write_status()
            why = restart_reason or f"exit {exit_code}"
            log(f"{self.key}/{name}: stopped ({why}); restart in {backoff:.0f} s")
            self.terminating.wait(backoff)
            backoff = min(backoff * 2 or BACKOFF_START_SECONDS, BACKOFF_MAX_SECONDS)
        self.exited[name].set()
        self.write_status()

    def _supervise(
        self, plan: ContainerPlan, running: RunningContainer, state: ContainerState
    ) -> str | None:
        """Run the probes until the container exits, a probe gives up on it or the pod is
        deleted; return why it was stopped (None when it exited by itself)."""
        stop_reason: list[str] = []
        stop = threading.Event()

        def prober(probe: Probe, role: str) -> None:
            failures = successes = 0
            if stop.wait(probe.initial_delay_seconds):
                return
            while not stop.is_set():
                if role != "startup" and not state.started:
                    stop.wait(0.2)
                    continue
                if role == "startup" and state.started:
                    return
                # Liveness and startup probes stop once the pod is terminating; readiness runs on.
                if role != "readiness" and self.terminating.is_set():
                    return
                began = time.monotonic()
                ok, detail = run_probe(probe, running, self.pod_ip)
                if ok:
                    successes, failures = successes + 1, 0
                else:
                    failures, successes = failures + 1, 0
                    log(f"{self.key}/{plan.name}: {role} probe failed ({failures}): {detail}")
                if role == "startup" and ok:
                    state.started = True
                    self.write_status()
                elif role == "readiness":
                    ready = (state.ready or successes >= probe.success_threshold) and (
                        failures < probe.failure_threshold
                    )
                    if ready != state.ready:
                        state.ready = ready
                        log(f"{self.key}/{plan.name}: ready={ready} ({detail})")
                        self.write_status()
                elif failures >= probe.failure_threshold:
                    stop_reason.append(f"{role} probe failed {failures} times: {detail}")
                    stop.set()
                    return
                stop.wait(max(0.0, probe.period_seconds - (time.monotonic() - began)))

        probes = [
            (plan.startup, "startup"),
            (plan.readiness, "readiness"),
            (plan.liveness, "liveness"),
        ]
        threads = [
            threading.Thread(target=prober, args=(p, role), daemon=True) for p, role in probes if p
        ]
        for thread in threads:
            thread.start()
        if plan.readiness is None:
            # No readiness probe: ready once started, as the kubelet has it.
            def ready_when_started() -> None:
                while not stop.is_set() and not state.started:
                    stop.wait(0.2)
                if not stop.is_set():
                    state.ready = True
                    self.write_status()

            threading.Thread(target=ready_when_started, daemon=True).start()
        while running.exited() is None and not stop.is_set() and not self.terminating.is_set():
            time.sleep(0.1)
        if running.exited() is None and (stop.is_set() or self.terminating.is_set()):
            reason = stop_reason[0] if stop_reason else None
            self._stop_container(plan, running, state, reason)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        with self.lock:
            self.running.pop(plan.name, None)
        return stop_reason[0] if stop_reason else None

    def _stop_container(
        self, plan: ContainerPlan, running: RunningContainer, state: ContainerState,
        reason: str | None,
    ) -> None:  # fmt: skip
        """preStop, then SIGTERM, then SIGKILL at the end of the grace period."""
        if self.killed.is_set():
            kill_container(running)
            return
        grace = (
            self.grace_seconds()
            if reason is None
            else float(self.pod["spec"].get("terminationGracePeriodSeconds", 30))
        )
        began = time.monotonic()
        deadline = began + grace
        why = reason or "pod deleted"
        if plan.pre_stop:
            log(f"{self.key}/{plan.name}: preStop ({why}), up to {grace:.0f} s")
            code, _ = exec_in(running, plan.pre_stop, timeout=grace)
            took = time.monotonic() - began
            log(f"{self.key}/{plan.name}: preStop exit {code} after {took:.1f} s")
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + PRESTOP_OVERRUN_SECONDS
        if plan.sidecar and reason is None:
            self._wait_for_turn(plan.name, deadline)
            if time.monotonic() >= deadline:
                deadline = time.monotonic() + PRESTOP_OVERRUN_SECONDS
        # From here on the container is not ready, whatever its last probe said.
        state.ready = False
        self.write_status()
        left = max(0.0, deadline - time.monotonic())
        log(f"{self.key}/{plan.name}: SIGTERM, {left:.1f} s before SIGKILL")
        signal_container(running, signal.SIGTERM)
        while running.exited() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if running.exited() is None:
            log(f"{self.key}/{plan.name}: grace period over: SIGKILL")
            kill_container(running)
        else:
            log(f"{self.key}/{plan.name}: exited {running.exited()} "
                f"{time.monotonic() - began:.1f} s after the stop began")  # fmt: skip

    def _wait_for_turn(self, name: str, deadline: float) -> None:
        """A sidecar gets SIGTERM only once every main container has exited and every sidecar
        declared after it has stopped (the reverse of their start order), or when the grace
        period is over, as the kubelet orders a pod's termination."""
        names = [c["name"] for c in self.init_containers]
        later_sidecars = [
            n for n in names[names.index(name) + 1 :] if self.states[n].role == "sidecar"
        ]
        waits_for = [c["name"] for c in self.pod["spec"]["containers"]] + later_sidecars[:1]
        began = time.monotonic()
        for other in waits_for:
            if not self.exited[other].wait(max(0.0, deadline - time.monotonic())):
                break
        log(f"{self.key}/{name}: its turn to stop after {time.monotonic() - began:.1f} s "
            f"(waited for {', '.join(waits_for)})")  # fmt: skip

    # -- status -------------------------------------------------------------------------------

    def write_status(self) -> None:
        with self.status_lock:
            self._write_status()

    def _write_status(self) -> None:
        if self.killed.is_set():
            return
        main = [s for s in self.states.values() if s.role == "main"]
        # A sidecar's readiness counts towards the pod's; a completed init container's does not.
        counted = [s for s in self.states.values() if s.role != "init"]
        all_ready = self.initialized and all(s.ready for s in counted)
        finished = bool(main) and all(s.terminated is not None for s in main)
        any_running = any(s.running_since and s.waiting is None for s in main)
        phase = "Running" if self.initialized and any_running else "Pending"
        if finished:
            failed = any(s.terminated and s.terminated.get("exitCode") != 0 for s in main)
            phase = "Failed" if failed else "Succeeded"
        stamp = now_rfc3339()

        def condition(kind: str, ok: bool) -> dict[str, Any]:
            # lastTransitionTime moves only when this condition's status does.
            status = "True" if ok else "False"
            if self.transitions.get(kind, ("", ""))[0] != status:
                self.transitions[kind] = (status, stamp)
            return {"type": kind, "status": status, "lastTransitionTime": self.transitions[kind][1]}

        status = {
            "phase": phase,
            "hostIP": BRIDGE_ADDRESS,
            "hostIPs": [{"ip": BRIDGE_ADDRESS}],
            "podIP": self.pod_ip,
            "podIPs": [{"ip": self.pod_ip}],
            "startTime": self.start_time,
            "conditions": [
                condition("PodReadyToStartContainers", self.network_ready),
                condition("Initialized", self.initialized),
                condition("ContainersReady", all_ready),
                condition("Ready", all_ready),
            ],
            "containerStatuses": [s.as_status() for s in main],
        }
        if self.init_containers:
            status["initContainerStatuses"] = [
                s.as_status() for s in self.states.values() if s.role != "main"
            ]
        fingerprint = json.dumps(status, sort_keys=True)
        with self.lock:
            if fingerprint == self.last_status:
                return
            self.last_status = fingerprint
        meta = self.pod["metadata"]
        try:
            self.runner.api.strategic_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status",
                {"status": status},
            )
        except ApiError as error:
            if error.status != 404:
                log(f"{self.key}: status update failed: {error}")


class PodRunner:
    def __init__(self, api: KubeApi, cluster_dir: Path, image_map: ImageMap,
                 runtime_env: dict[str, str]) -> None:  # fmt: skip
        self.api = api
        self.cluster_dir = cluster_dir
        self.image_map = image_map
        self.runtime_env = runtime_env
        self.ips = IpPool()
        self.workers: dict[str, PodWorker] = {}
        self.stopping = threading.Event()

    # -- node ---------------------------------------------------------------------------------

    def node_status(self) -> dict[str, Any]:
        memory_kib = int(Path("/proc/meminfo").read_text().split()[1])
        disk = os.statvfs(self.cluster_dir)
        disk_kib = disk.f_blocks * disk.f_frsize // 1024
        capacity = {
            "cpu": str(os.cpu_count() or 1),
            "memory": f"{memory_kib}Ki",
            "ephemeral-storage": f"{disk_kib}Ki",
            "pods": "110",
        }
        stamp = now_rfc3339()

        def condition(kind: str, status: str, reason: str) -> dict[str, str]:
            return {"type": kind, "status": status, "reason": reason,
                    "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}  # fmt: skip

        return {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID"),
                condition("Ready", "True", "KubeletReady"),
            ],
            "addresses": [
                {"type": "InternalIP", "address": BRIDGE_ADDRESS},
                {"type": "Hostname", "address": NODE_NAME},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 0}},
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": platform.release(),
                "osImage": "pod-runner (scalable-inference-server e2e)",
                "containerRuntimeVersion": "pod-runner://0",
                "kubeletVersion": pinned_versions().kubernetes,
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        }  # fmt: skip

    def register_node(self) -> None:
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": NODE_NAME,
                "labels": {
                    "kubernetes.io/hostname": NODE_NAME,
                    "kubernetes.io/os": "linux",
                    "kubernetes.io/arch": "amd64",
                },
            },
            "status": self.node_status(),
        }
        try:
            self.api.create("/api/v1/nodes", node)
        except ApiError as error:
            if error.status != 409:
                raise
        self.api.strategic_patch(
            f"/api/v1/nodes/{NODE_NAME}/status", {"status": self.node_status()}
        )
        log(f"node {NODE_NAME} registered")

    def renew_lease(self) -> None:
        path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{NODE_NAME}"
        spec = {"holderIdentity": NODE_NAME, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                "renewTime": now_micro()}  # fmt: skip
        try:
            lease = self.api.get(path)
            lease["spec"].update(spec)
            self.api.replace(path, lease)
        except ApiError as error:
            if error.status != 404:
                raise
            self.api.create(
                "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                 "metadata": {"name": NODE_NAME, "namespace": "kube-node-lease"}, "spec": spec},
            )  # fmt: skip

    def heartbeat_loop(self) -> None:
        last_status = time.monotonic()
        while not self.stopping.wait(LEASE_RENEW_SECONDS):
            try:
                self.renew_lease()
                if time.monotonic() - last_status > NODE_STATUS_SECONDS:
                    self.api.strategic_patch(
                        f"/api/v1/nodes/{NODE_NAME}/status", {"status": self.node_status()}
                    )
                    last_status = time.monotonic()
            except (ApiError, OSError) as error:
                log(f"heartbeat failed: {error}")

    # -- pods ---------------------------------------------------------------------------------

    def sync_once(self) -> None:
        selector = quote(f"spec.nodeName={NODE_NAME}")
        pods = self.api.get(f"/api/v1/pods?fieldSelector={selector}")["items"]
        seen = set()
        for pod in pods:
            uid = pod["metadata"]["uid"]
            seen.add(uid)
            worker = self.workers.get(uid)
            phase = pod.get("status", {}).get("phase")
            if worker is None:
                if phase in ("Succeeded", "Failed"):
                    continue
                worker = PodWorker(self, pod, self.ips.take())
                self.workers[uid] = worker
                log(f"{worker.key}: bound here, pod IP {worker.pod_ip}")
                worker.start()
            if pod["metadata"].get("deletionTimestamp"):
                worker.request_termination(pod)
        for uid, worker in list(self.workers.items()):
            if uid not in seen and not worker.done.is_set():
                log(f"{worker.key}: removed from the API: killing its containers")
                worker.kill_now()
            if worker.done.is_set():
                del self.workers[uid]

    def run(self) -> None:
        self.register_node()
        self.renew_lease()
        threading.Thread(target=self.heartbeat_loop, name="heartbeat", daemon=True).start()
        while not self.stopping.is_set():
            try:
                self.sync_once()
            except (ApiError, OSError) as error:
                log(f"pod sync failed: {error}")
            self.stopping.wait(POLL_SECONDS)

    def shutdown(self) -> None:
        """Like a node losing power: every container is killed at once, then its network goes."""
        self.stopping.set()
        for worker in list(self.workers.values()):
            worker.kill_now()
        for worker in list(self.workers.values()):
            worker.done.wait(timeout=10)


def runtime_environment(work_dir: Path, pod_python: Path) -> tuple[Path, dict[str, str]]:
    """The local tritonserver that `inference-tools serve` prepares, and what the image
    provides in its own way: the shared libraries' path, and a python3 first on PATH (the one
    the Python-backend stub embeds and the hooks' `#!/usr/bin/env python3` finds)."""
    from inference_tools.triton_runtime import prepare_runtime

    runtime = prepare_runtime(work_dir)
    env = {
        "PATH": f"{pod_python / 'bin'}:{STANDARD_PATH}",
        "VIRTUAL_ENV": str(pod_python),
        "LD_LIBRARY_PATH": runtime.env["LD_LIBRARY_PATH"],
    }
    return runtime.tritonserver, env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--cluster-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    layout = ClusterLayout(args.cluster_dir)
    tritonserver, runtime_env = runtime_environment(CHECKOUT / ".work", layout.pod_python)
    runner = PodRunner(
        KubeApi.from_kubeconfig(args.kubeconfig), args.cluster_dir,
        serving_image_map(tritonserver), runtime_env,
    )  # fmt: skip

    def on_signal(signum: int, _frame: object) -> None:
        log(f"signal {signum}: killing every pod of this node")
        runner.stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        runner.run()
    finally:
        runner.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
