"""What the HPA-model scenario needs around the real controller: a per-pod series whose values the
test sets, scraped by a Prometheus and served by prometheus-adapter as a `Pods` metric, and a
record of every sync of kube-controller-manager's HPA controller with what it saw.

The series: a small exporter on loopback lists the Deployment's running pods at each scrape
and offers, for each, `demand / running pods` (the load spread evenly, as a Service spreads it),
leaving out the pods the test names (a pod whose metric is missing) or every pod (the metric
gone). Prometheus scrapes it every 5 s with `honor_labels`, so the series keep the exporter's
`namespace` and `pod` labels, which is all the adapter needs to map them to pods.

The syncs: the adapter, at verbosity 3, logs each request it answers with the time it answered;
the controller asks for the metric once per sync, and nothing else asks for it during the
scenario. For each such moment the record takes the pods and the Deployment's replica count from
the last snapshot before it (the API is read every second), the values from Prometheus at that
very instant (what the adapter's query got), and the replica count after it from the snapshot
just before the next sync.
"""

from __future__ import annotations

import csv
import json
import re
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from inference_tools.autoscaling.hpa_spec import quantity_value
from kubecluster.kubeapi import KubeApi
from lab.autoscaling.hpa_replay import RecordedPod, RecordedSync

METRIC = "hpa_model_load"
LOOPBACK = "127.0.0.1"
SCRAPE_SECONDS = 5
SNAPSHOT_SECONDS = 1.0
# A sync's writes (the scale, the status) are in the API this long after it asked for metrics.
SETTLE_SECONDS = 2.0
# The adapter's request log (klog, UTC on these machines): I1207 23:59:01.123456  4242
# httplog.go:134] "HTTP" verb="LIST" URI="/apis/custom.metrics.k8s.io/..." latency="5.1ms" ...
HTTP_LINE = re.compile(
    r'^[IWE](\d{2})(\d{2}) (\d{2}:\d{2}:\d{2}\.\d+)\s+\d+ \S+\] "HTTP" '
    r'.*?URI="([^"]+)" .*?resp=(\d+)'
)


def adapter_rule() -> dict[str, Any]:
    """The adapter rule that serves the series as a per-pod metric of the same name."""
    return {
        "seriesQuery": f'{METRIC}{{namespace!="",pod!=""}}',
        "resources": {"overrides": {"namespace": {"resource": "namespace"},
                                    "pod": {"resource": "pod"}}},
        "name": {"matches": f"^{METRIC}$", "as": METRIC},
        "metricsQuery": "max(<<.Series>>{<<.LabelMatchers>>}) by (<<.GroupBy>>)",
    }  # fmt: skip


def prometheus_config(exporter_port: int) -> dict[str, Any]:
    return {
        "global": {"scrape_interval": f"{SCRAPE_SECONDS}s"},
        "scrape_configs": [{
            "job_name": METRIC, "honor_labels": True,
            "static_configs": [{"targets": [f"{LOOPBACK}:{exporter_port}"]}],
        }],
    }  # fmt: skip


def running(pod: dict[str, Any]) -> bool:
    return pod["status"].get("phase") == "Running" and not pod["metadata"].get("deletionTimestamp")


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


class LoadSeries:
    """The exporter: `demand` spread over the running pods, less the pods left out."""

    def __init__(self, api: KubeApi, namespace: str, selector: str) -> None:
        self.api, self.namespace, self.selector = api, namespace, selector
        self.demand = 0.0
        self.left_out: set[str] = set()
        self.silent = False
        self.scrapes: Counter[str] = Counter()
        series = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = series.exposition().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: object) -> None:
                return

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def running_pods(self) -> list[str]:
        """The running pods' names, oldest first."""
        pods = self.api.get(
            f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={self.selector}"
        )["items"]
        pods.sort(key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]))
        return [p["metadata"]["name"] for p in pods if running(p)]

    def exposition(self) -> str:
        try:
            pods = self.running_pods()
        except (OSError, RuntimeError):
            # The API did not answer: this scrape fails, as a pod's would while it hangs.
            self.scrapes["failed"] += 1
            raise
        self.scrapes["served"] += 1
        if self.silent or not pods:
            return ""
        # Three decimals: the metrics API carries milli-units.
        value = round(self.demand / len(pods), 3)
        lines = [f"# TYPE {METRIC} gauge"]
        lines += [f'{METRIC}{{namespace="{self.namespace}",pod="{name}"}} {value:.3f}'
                  for name in pods if name not in self.left_out]  # fmt: skip
        return "\n".join(lines) + "\n"

    def start(self) -> LoadSeries:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Snapshot:
    at: float  # wall-clock seconds
    spec_replicas: int
    pods: tuple[RecordedPod, ...]
    hpa_status: dict[str, Any]


@dataclass
class Snapshots:
    """The Deployment's replica count, its pods and the HPA's status, once a second."""

    api: KubeApi
    namespace: str
    deployment: str
    hpa: str
    selector: str
    taken: list[Snapshot] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="snapshots", daemon=True)

    def take(self) -> Snapshot:
        base = f"/apis/apps/v1/namespaces/{self.namespace}/deployments/{self.deployment}"
        replicas = int(self.api.get(base)["spec"]["replicas"])
        pods = self.api.get(
            f"/api/v1/namespaces/{self.namespace}/pods?labelSelector={self.selector}"
        )["items"]
        status = self.api.get(
            f"/apis/autoscaling/v2/namespaces/{self.namespace}/horizontalpodautoscalers/{self.hpa}"
        ).get("status", {})
        recorded = tuple(
            RecordedPod(p["metadata"]["name"], p["status"].get("phase", "Pending"), pod_ready(p),
                        bool(p["metadata"].get("deletionTimestamp")))
            for p in sorted(pods, key=lambda p: p["metadata"]["name"])
        )  # fmt: skip
        return Snapshot(time.time(), replicas, recorded, status)

    def _loop(self) -> None:
        while not self.stopping.wait(SNAPSHOT_SECONDS):
            try:
                self.taken.append(self.take())
            except (OSError, RuntimeError) as error:
                self.errors[type(error).__name__] += 1

    def start(self) -> Snapshots:
        self.taken.append(self.take())
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=10)

    def before(self, at: float) -> Snapshot | None:
        earlier = [s for s in self.taken if s.at <= at]
        return earlier[-1] if earlier else None


@dataclass(frozen=True)
class MetricRequest:
    # Wall-clock seconds the adapter answered: it queries Prometheus at the end of the request,
    # after the delegated authentication and authorization, which take the most time.
    at: float
    status: int


def controller_requests(log_text: str, namespace: str, year: int) -> list[MetricRequest]:
    """The requests for the scenario's metric in the adapter's log, oldest first."""
    found = []
    for line in log_text.splitlines():
        match = HTTP_LINE.match(line)
        if not match:
            continue
        month, day, clock, uri, status = match.groups()
        path = urllib.parse.unquote(uri)
        if f"/namespaces/{namespace}/pods/*/{METRIC}" not in path:
            continue
        logged = datetime.strptime(f"{year}-{month}-{day} {clock}", "%Y-%m-%d %H:%M:%S.%f")
        found.append(MetricRequest(logged.replace(tzinfo=UTC).timestamp(), int(status)))
    return sorted(found, key=lambda r: r.at)


def values_at(prometheus_url: str, namespace: str, at: float) -> dict[str, float]:
    """Each pod's value of the series at one instant, as an instant query then got it."""
    query = urllib.parse.urlencode(
        {"query": f'max({METRIC}{{namespace="{namespace}"}}) by (pod)', "time": f"{at:.3f}"}
    )
    with urllib.request.urlopen(f"{prometheus_url}/api/v1/query?{query}", timeout=10) as answer:
        result = json.load(answer)["data"]["result"]
    return {r["metric"]["pod"]: float(r["value"][1]) for r in result}


def current_averages(status: dict[str, Any]) -> dict[str, float | None]:
    found: dict[str, float | None] = {}
    for entry in status.get("currentMetrics") or []:
        if entry.get("type") != "Pods":
            continue
        average = entry["pods"].get("current", {}).get("averageValue")
        found[entry["pods"]["metric"]["name"]] = (
            None if average is None else quantity_value(average)
        )
    return found


def assemble(requests: list[MetricRequest], snapshots: Snapshots, prometheus_url: str,
             namespace: str) -> list[RecordedSync]:  # fmt: skip
    """One recorded sync per controller request, with what it saw and what it decided."""
    syncs = []
    origin = requests[0].at if requests else 0.0
    for index, request in enumerate(requests):
        before = snapshots.before(request.at)
        if before is None:
            continue
        # What the sync led to: the Deployment's replicas and the HPA's status just before the
        # next sync (or at the end of the recording).
        until = requests[index + 1].at - 0.5 if index + 1 < len(requests) else time.time()
        after = snapshots.before(until)
        if after is None or after.at < request.at + SETTLE_SECONDS:
            # Nothing read late enough to hold what this sync wrote.
            continue
        listed = {p.name for p in before.pods}
        values: dict[str, float] | None = None
        if request.status == 200:
            found = values_at(prometheus_url, namespace, request.at)
            # The adapter answers for the pods it lists (its own informer): those the API had.
            values = {pod: value for pod, value in found.items() if pod in listed} or None
        conditions = {c["type"]: c["reason"] for c in after.hpa_status.get("conditions") or []}
        syncs.append(RecordedSync(
            at_s=request.at - origin, replicas=before.spec_replicas, pods=before.pods,
            values={METRIC: values}, desired_replicas=after.spec_replicas,
            current_averages=current_averages(after.hpa_status), conditions=conditions,
        ))  # fmt: skip
    return syncs


def log_offset(path: Path) -> int:
    return path.stat().st_size if path.is_file() else 0


def read_from(path: Path, offset: int) -> str:
    with path.open("rb") as handle:
        handle.seek(offset)
        return handle.read().decode(errors="replace")


def write_snapshots(snapshots: Snapshots, origin: float, path: Path) -> None:
    """The once-a-second series as CSV: seconds from the first sync, the Deployment's replicas,
    the HPA's status (current and desired replicas, the current average of each metric), and the
    pods listed, running and Ready."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", "spec_replicas", "status_current_replicas",
                         "status_desired_replicas", "current_average", "pods", "running",
                         "ready"])  # fmt: skip
        for snapshot in snapshots.taken:
            status = snapshot.hpa_status
            averages = current_averages(status)
            writer.writerow([
                f"{snapshot.at - origin:.1f}", snapshot.spec_replicas,
                status.get("currentReplicas"), status.get("desiredReplicas"),
                " ".join(f"{name}={value}" for name, value in averages.items()),
                len(snapshot.pods), sum(p.phase == "Running" for p in snapshot.pods),
                sum(p.ready for p in snapshot.pods),
            ])  # fmt: skip
