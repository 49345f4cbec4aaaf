"""What the autoscaling scenario records from the cluster while a load step runs: every 0.5 s the
HPA, the Deployment and the pods (for the moments things happen), every 5 s a row of the series
(offered and served rate, latency, the HPA's current metrics, replicas); and afterwards each
new pod's cold start, split into its parts from the pod runner's and Triton's own logs."""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from inference_tools.autoscaling.hpa_spec import quantity_value
from kubecluster.kubeapi import KubeApi
from lab.autoscaling.plots import ClusterRow
from lab.reliability.load import LoadRecord

POLL_SECONDS = 0.5
ROW_SECONDS = 5.0
# The pod runner's log: "<RFC 3339 with µs> <namespace>/<pod>: bound here, ..." and
# "<...> <namespace>/<pod>/<container>: started, ...".
RUNNER_LINE = re.compile(r"^(\S+Z) (\S+?)/(\S+?)(?:/(\S+))?: (bound here|started)")
# Triton's glog prefix (UTC on these machines): I1207 19:22:33.123456 ... successfully loaded
TRITON_LOADED = re.compile(r"^I(\d{2})(\d{2}) (\d{2}:\d{2}:\d{2}\.\d+) .*successfully loaded")


@dataclass
class PodTimeline:
    """Wall-clock seconds (time.time()) of what happened to one pod; None until it has."""

    name: str
    uid: str
    created: float
    seen: float
    scheduled: float | None = None
    started: float | None = None  # Triton's startup probe passed
    ready: float | None = None


@dataclass
class Recorder:
    api: KubeApi
    namespace: str
    # The HPA to read (KEDA names its own), and the names its metrics are recorded under, in
    # the order of its spec (KEDA's External metrics are named s0-prometheus, ...); empty: each
    # Pods metric's own name.
    hpa_name: str = "triton"
    metric_names: tuple[str, ...] = ()
    origin: float = field(default_factory=time.monotonic)
    rows: list[ClusterRow] = field(default_factory=list)
    pods: dict[str, PodTimeline] = field(default_factory=dict)
    # (monotonic seconds, desired replicas), each time the HPA's desire changed.
    desired_changes: list[tuple[float, int]] = field(default_factory=list)
    spec_changes: list[tuple[float, int]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    errors: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="recorder", daemon=True)

    def start(self) -> Recorder:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        next_row = time.monotonic()
        while not self.stopping.is_set():
            try:
                hpa, deployment = self._poll()
                if time.monotonic() >= next_row:
                    self.rows.append(self._row(hpa, deployment))
                    next_row += ROW_SECONDS
            except Exception as error:
                # A slow API answer on the loaded machine, or anything else: counted and
                # reported with the figures; the next poll tries again.
                self.errors[f"{type(error).__name__}: {str(error)[:120]}"] += 1
            self.stopping.wait(POLL_SECONDS)

    def _poll(self) -> tuple[dict[str, Any], dict[str, Any]]:
        now_wall, now = time.time(), time.monotonic()
        base = f"/apis/autoscaling/v2/namespaces/{self.namespace}/horizontalpodautoscalers"
        hpa = self.api.get(f"{base}/{self.hpa_name}")
        deployment = self.api.get(f"/apis/apps/v1/namespaces/{self.namespace}/deployments/triton")
        desired = hpa.get("status", {}).get("desiredReplicas")
        if desired is not None and (not self.desired_changes or
                                    self.desired_changes[-1][1] != desired):  # fmt: skip
            self.desired_changes.append((now, desired))
        replicas = deployment["spec"].get("replicas")
        if not self.spec_changes or self.spec_changes[-1][1] != replicas:
            self.spec_changes.append((now, replicas))
        for pod in self.api.get(f"/api/v1/namespaces/{self.namespace}/pods")["items"]:
            meta, status = pod["metadata"], pod.get("status", {})
            created = rfc3339(meta["creationTimestamp"])
            timeline = self.pods.setdefault(
                meta["uid"], PodTimeline(meta["name"], meta["uid"], created, now_wall)
            )
            if timeline.scheduled is None and pod["spec"].get("nodeName"):
                timeline.scheduled = now_wall
            triton = next((c for c in status.get("containerStatuses") or []
                           if c["name"] == "triton"), {})  # fmt: skip
            if timeline.started is None and triton.get("started"):
                timeline.started = now_wall
            conditions = {c["type"]: c["status"] for c in status.get("conditions") or []}
            if timeline.ready is None and conditions.get("Ready") == "True":
                timeline.ready = now_wall
        return hpa, deployment

    def _row(self, hpa: dict[str, Any], deployment: dict[str, Any]) -> ClusterRow:
        """The cluster's side of a row; the load's side is filled in once the load is over
        (`fill_load`), when every request due in the window has its outcome."""
        status = hpa.get("status", {})
        return ClusterRow(
            time_s=time.monotonic() - self.origin,
            offered_per_s=0.0,
            served_per_s=0.0,
            p50_s=None,
            p99_s=None,
            metrics=current_metrics(status, self.metric_names),
            desired_replicas=status.get("desiredReplicas"),
            spec_replicas=deployment["spec"].get("replicas"),
            ready_replicas=int(deployment.get("status", {}).get("readyReplicas") or 0),
        )

    def fill_load(self, record: LoadRecord) -> None:
        """Each row's offered rate (requests due in its 5 s, sent or not), served rate (200 OK
        answers in its 5 s) and the latency of those answers, counted from when they were due."""
        outcomes = record.snapshot()
        for row in self.rows:
            end = self.origin + row.time_s - record.started_at
            start = end - ROW_SECONDS
            due = [o for o in outcomes if start <= o.sent_at_s < end]
            answered = [o for o in outcomes
                        if o.ok and start <= o.sent_at_s + o.latency_s < end]  # fmt: skip
            latencies = [o.latency_s for o in answered]
            row.offered_per_s = len(due) / ROW_SECONDS
            row.served_per_s = len(answered) / ROW_SECONDS
            row.p50_s = float(np.percentile(latencies, 50)) if latencies else None
            row.p99_s = float(np.percentile(latencies, 99)) if latencies else None


def current_metrics(
    hpa_status: dict[str, Any], names: Sequence[str] = ()
) -> dict[str, float | None]:
    """The HPA's status.currentMetrics: each Pods or External metric's current average, by its
    name, or by `names[i]` for the i-th (the controller writes them in the spec's order)."""
    found: dict[str, float | None] = {}
    for index, metric in enumerate(hpa_status.get("currentMetrics") or []):
        source = metric.get("pods") or metric.get("external") or {}
        name = (source.get("metric") or {}).get("name")
        if names and index < len(names):
            name = names[index]
        if name:
            value = (source.get("current") or {}).get("averageValue")
            found[name] = None if value is None else quantity_value(value)
    return found


def rfc3339(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


def runner_events(log: str, namespace: str, pod: str) -> dict[str, float]:
    """When the pod runner took the pod ("bound") and started each container ("<name>")."""
    events: dict[str, float] = {}
    for line in log.splitlines():
        match = RUNNER_LINE.match(line)
        if not match or match.group(2) != namespace or match.group(3) != pod:
            continue
        stamp = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        key = "bound" if match.group(5) == "bound here" else str(match.group(4))
        # The first start only: a restart is not the cold start.
        events.setdefault(key, stamp.timestamp())
    return events


def models_loaded(triton_log: str, year: int) -> float | None:
    """When Triton logged the last of its models' "successfully loaded" lines (the first
    start of the container), or None if it logged none."""
    last = None
    for line in triton_log.splitlines():
        match = TRITON_LOADED.match(line)
        if match:
            month, day, clock = match.groups()
            stamp = datetime.strptime(f"{year}-{month}-{day} {clock}", "%Y-%m-%d %H:%M:%S.%f")
            last = stamp.replace(tzinfo=UTC).timestamp()
    return last


@dataclass(frozen=True)
class ColdStart:
    pod: str
    scheduling_s: float  # created -> bound to the node (the scheduler)
    process_start_s: float  # bound -> Triton's process started (network, the guard first)
    model_load_s: float  # Triton started -> its last model loaded
    startup_probe_s: float  # last model loaded -> startup probe passed (period 10 s)
    first_canary_s: float  # startup passed -> Ready (the readiness probe's canary)

    def describe(self) -> str:
        return (f"cold start {self.pod}: {self.total_s:.1f} s = scheduling "
                f"{self.scheduling_s:.2f} + process start {self.process_start_s:.2f} + model "
                f"load {self.model_load_s:.2f} + startup probe {self.startup_probe_s:.2f} + "
                f"first canary {self.first_canary_s:.2f}")  # fmt: skip

    @property
    def total_s(self) -> float:
        return (self.scheduling_s + self.process_start_s + self.model_load_s
                + self.startup_probe_s + self.first_canary_s)  # fmt: skip


def cold_start(timeline: PodTimeline, runner_log: str, triton_log: str,
               namespace: str) -> ColdStart | None:  # fmt: skip
    """The split for a pod that became Ready, from its created time (the API's, whole seconds),
    the runner's log (µs), Triton's log (µs) and the recorder's polls (every 0.5 s)."""
    events = runner_events(runner_log, namespace, timeline.name)
    if timeline.ready is None or timeline.started is None or not {"bound", "triton"} <= set(events):
        return None
    loaded = models_loaded(triton_log, datetime.fromtimestamp(events["triton"], UTC).year)
    if loaded is None:
        return None
    # creationTimestamp has whole seconds; the first poll that saw the pod (every 0.5 s)
    # narrows it down.
    created = max(timeline.created, timeline.seen - POLL_SECONDS)
    return ColdStart(
        pod=timeline.name,
        scheduling_s=max(0.0, events["bound"] - created),
        process_start_s=events["triton"] - events["bound"],
        model_load_s=loaded - events["triton"],
        startup_probe_s=max(0.0, timeline.started - loaded),
        first_canary_s=timeline.ready - timeline.started,
    )


def pod_log(cluster_root: Path, namespace: str, timeline: PodTimeline, container: str) -> str:
    folder = cluster_root / "pods" / f"{namespace}_{timeline.name}_{timeline.uid[:8]}"
    try:
        return (folder / f"{container}.log").read_text(errors="replace")
    except OSError:
        return ""
