"""Autoscaling through the real controllers: prometheus-adapter (built from its pinned release)
serves Triton's recorded metrics as `custom.metrics.k8s.io` through the API server's
aggregator, and kube-controller-manager's HPA controller scales the cpu-hpa Deployment under a
load step through the Service's ClusterIP; the new pods are real Tritons. The step is recorded
every 5 s and drawn (.work/e2e/autoscaling/), and each new pod's cold start is split into its
parts. Prometheus and the adapter run on the host (kubecluster/service_prometheus.py and
kubecluster/metrics_adapter.py say why)."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import pytest
from inference_tools.autoscaling import rendered_settings
from inference_tools.autoscaling.hpa_spec import quantity_value
from inference_tools.manifests.render import Render
from kubecluster import metrics_adapter, service_prometheus
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import ClusterLayout
from lab.autoscaling.plots import plot_cluster_step
from lab.reliability.load import OK, LoadRecord, open_loop_http

from tests.checkout import CHECKOUT
from tests.e2e.autoscaling_record import (
    ColdStart,
    Recorder,
    cold_start,
    current_metrics,
    pod_log,
)
from tests.e2e.conftest import (
    LOCAL_OVERLAYS,
    NAMESPACE,
    Kubectl,
    apply_documents,
    apply_release,
    wait_for,
)

pytestmark = pytest.mark.e2e

OVERLAY = "cpu-hpa-scaling"
RESULTS = CHECKOUT / ".work" / "e2e" / "autoscaling"
METRICS = ("triton_queue_time_per_request_us", "triton_pending_requests",
           "triton_requests_per_second")  # fmt: skip
# Well beyond what the CPU Tritons serve on this 2-core machine however many there are (they
# share its two cores; two served 130 to 250 requests/s in these runs): a step to 250/s sat so
# close to capacity that the signals hovered around their targets and the decision came after
# 34 to 135 s. At most 64 requests in flight from the client.
OFFERED_PER_S = 400.0
WORKERS = 64
BASELINE_SECONDS = 15.0
# Load goes on this long after the first new pod is Ready, to see the scaled-out pods serve.
AFTER_READY_SECONDS = 30.0
# The hard bound on the load, whatever happens.
LOAD_LIMIT_SECONDS = 300.0
# Waits (not figures): scrape 15 s + rules 15 s + the adapter's relist 60 s + HPA sync 15 s,
# and pods that start on a loaded 2-core machine.
METRICS_TIMEOUT = 240.0
DECISION_TIMEOUT = 240.0
READY_TIMEOUT = 300.0
BACK_TIMEOUT = 420.0
# One more row of the series after the last pod has gone.
ROW_PAUSE_SECONDS = 5.0


def pods(api: KubeApi) -> list[dict[str, Any]]:
    return list(api.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"])


def ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def settled(api: KubeApi, replicas: int) -> set[str]:
    """The pods' names once the Deployment's rollout is over at `replicas` (every pod of its
    current template Ready, no other pod left), else an empty set."""
    deployment = api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/triton")
    status = deployment.get("status", {})
    rolled_out = status.get("observedGeneration") == deployment["metadata"]["generation"] and all(
        status.get(field) == replicas for field in ("replicas", "updatedReplicas", "readyReplicas")
    )
    found = pods(api)
    if not rolled_out or len(found) != replicas or not all(ready(p) for p in found):
        return set()
    return {p["metadata"]["name"] for p in found}


def hpa(api: KubeApi) -> dict[str, Any]:
    path = f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/triton"
    return dict(api.get(path))


def restore_cpu_release(kubectl: Kubectl, api: KubeApi) -> None:
    """The cpu overlay again, as the other scenarios expect it: the HPA and the Deployment it
    scaled go first (the HPA controller owns spec.replicas, which a plain apply would not
    take back)."""
    kubectl.run("delete", "horizontalpodautoscaler/triton", "deployment/triton",
                f"--namespace={NAMESPACE}", "--ignore-not-found", "--wait=false")  # fmt: skip
    wait_for("the autoscaled pods to go", lambda: not pods(api), timeout=180, interval=1.0)
    apply_release(kubectl, "cpu")


@pytest.fixture(scope="module")
def rendered(kubectl: Kubectl) -> Render:
    return rendered_settings.render(LOCAL_OVERLAYS / OVERLAY)


@pytest.fixture(scope="module")
def autoscaled(
    kubectl: Kubectl, api: KubeApi, cluster: ClusterLayout, monitoring_crds: list[str],
    rendered: Render,
) -> Iterator[str]:  # fmt: skip
    """The overlay applied, the host Prometheus with its ServiceMonitor and rules, the adapter
    registered; yields Prometheus's URL."""
    apply_release(kubectl, OVERLAY)
    url, targets = service_prometheus.start(cluster, api, rendered)
    try:
        values = rendered_settings.adapter_values(rendered)
        metrics_adapter.start(cluster, api, apply_documents(kubectl), url, values)
        yield url
    finally:
        metrics_adapter.stop(cluster)
        metrics_adapter.unregister(api)
        targets.stop()
        service_prometheus.stop(cluster)
        restore_cpu_release(kubectl, api)


def served_pods(kubectl: Kubectl, version: str, metric: str) -> dict[str, str]:
    path = f"/apis/custom.metrics.k8s.io/{version}/namespaces/{NAMESPACE}/pods/*/{metric}"
    result = kubectl.run("get", "--raw", path, check=False)
    if result.returncode != 0:
        return {}
    return {i["describedObject"]["name"]: i["value"] for i in json.loads(result.stdout)["items"]}


def test_prometheus_adapter_serves_tritons_metrics_to_the_hpa_controller(
    kubectl: Kubectl, api: KubeApi, cluster: ClusterLayout, autoscaled: str
) -> None:
    started = time.monotonic()
    available_after = metrics_adapter.wait_available(cluster, api)
    minimum = hpa(api)["spec"]["minReplicas"]
    names = wait_for(
        f"the overlay's {minimum} pods ready, no other pod left",
        lambda: settled(api, minimum),
        timeout=READY_TIMEOUT,
        interval=1.0,
    )
    pods_ready_after = time.monotonic() - started
    served = {}
    for version, _ in metrics_adapter.VERSIONS:
        for metric in METRICS:
            served[(version, metric)] = wait_for(
                f"{metric} of {sorted(names)} through {version}",
                lambda v=version, m=metric: (found := served_pods(kubectl, v, m))
                and names <= set(found) and found,
                timeout=METRICS_TIMEOUT, interval=2.0,
            )  # fmt: skip
    served_after = time.monotonic() - started
    status = wait_for(
        "the HPA's currentMetrics",
        lambda: (s := hpa(api).get("status", {})) and len(current_metrics(s)) == len(METRICS)
        and all(v is not None for v in current_metrics(s).values()) and s,
        timeout=METRICS_TIMEOUT, interval=1.0,
    )  # fmt: skip
    active = next(c for c in status["conditions"] if c["type"] == "ScalingActive")
    print(
        f"\nprometheus-adapter {metrics_adapter.adapter_version()}: APIServices "
        f"{', '.join(f'{v}.{metrics_adapter.GROUP}' for v, _ in metrics_adapter.VERSIONS)} "
        f"Available {available_after:.1f} s after the adapter started; {minimum} pods ready "
        f"after {pods_ready_after:.1f} s; every metric of every ready pod served through the "
        f"aggregator after {served_after:.1f} s; the HPA controller's currentMetrics "
        f"{current_metrics(status)} ({active['reason']}) after {time.monotonic() - started:.1f} s"
    )
    assert active["status"] == "True", active
    for (version, metric), values in served.items():
        assert names <= set(values), (version, metric, values)


def first_after(changes: list[tuple[float, int]], after: float,
                accept: Callable[[int], bool]) -> float | None:  # fmt: skip
    return next((at for at, value in changes if at >= after and accept(value)), None)


# Not in `make e2e` (CI): the load generator holds at most WORKERS requests in flight, which
# bounds Triton's queues, so whether the queue signal crosses its target at the step depends on
# how fast this machine serves. On a loaded machine it scaled out after 29 s; on a quiet one
# (the clean-clone rehearsal) the queue time per request stayed at 34 ms under its 37.7 ms
# target and nothing scaled while p99 grew client-side. `make e2e-load-step` runs it.
@pytest.mark.load_step
def test_a_load_step_scales_out_through_the_real_controllers_and_back(
    kubectl: Kubectl, api: KubeApi, cluster: ClusterLayout, autoscaled: str
) -> None:
    spec = hpa(api)["spec"]
    minimum, maximum = spec["minReplicas"], spec["maxReplicas"]
    wait_for("the HPA at minReplicas with its metrics",
             lambda: (s := hpa(api).get("status", {})).get("desiredReplicas") == minimum
             and len(current_metrics(s)) == len(METRICS) and settled(api, minimum),
             timeout=METRICS_TIMEOUT, interval=1.0)  # fmt: skip
    address = api.get(f"/api/v1/namespaces/{NAMESPACE}/services/triton")["spec"]["clusterIP"]
    wall_minus_monotonic = time.time() - time.monotonic()
    recorder = Recorder(api, NAMESPACE).start()
    before = {p["metadata"]["uid"] for p in pods(api)}
    record, stop = LoadRecord(), threading.Event()
    # The moments the figures are measured between (monotonic seconds), as they happen.
    marks: dict[str, float] = {}
    try:
        time.sleep(BASELINE_SECONDS)
        record = LoadRecord()
        marks["step"] = record.started_at
        load = threading.Thread(target=open_loop_http, args=(f"{address}:8000", OFFERED_PER_S,
                                LOAD_LIMIT_SECONDS), kwargs={"workers": WORKERS, "stop": stop,
                                "record": record}, daemon=True)  # fmt: skip
        load.start()
        marks["decision"] = wait_for(
            "the HPA's scale-out decision",
            lambda: first_after(recorder.desired_changes, marks["step"], lambda d: d > minimum),
            timeout=DECISION_TIMEOUT, interval=0.5,
        )  # fmt: skip

        def new_ready() -> float | None:
            times = [t.ready for uid, t in recorder.pods.items()
                     if uid not in before and t.ready is not None]  # fmt: skip
            return min(times) - wall_minus_monotonic if times else None

        marks["new pod Ready"] = wait_for("a new pod Ready", new_ready, timeout=READY_TIMEOUT)
        time.sleep(AFTER_READY_SECONDS)
        stop.set()
        load.join(timeout=120)
        marks["load stopped"] = time.monotonic()
        marks["back at min"] = wait_for(
            "the Deployment back at minReplicas",
            lambda: first_after(recorder.spec_changes, marks["load stopped"],
                                lambda r: r == minimum),
            timeout=BACK_TIMEOUT, interval=1.0,
        )  # fmt: skip
        wait_for("only minReplicas pods left", lambda: len(pods(api)) == minimum, timeout=180,
                 interval=1.0)  # fmt: skip
        marks["extra pods gone"] = time.monotonic()
        time.sleep(ROW_PAUSE_SECONDS)
    finally:
        # Whatever happened, the load stops and what was recorded is written and drawn.
        stop.set()
        recorder.stop()
        recorder.fill_load(record)
        statuses = Counter(o.status for o in record.snapshot())
        new_pods = [t for uid, t in recorder.pods.items() if uid not in before]
        runner_log = cluster.log_file("pod-runner").read_text(errors="replace")
        starts = [s for t in new_pods if (s := cold_start(
            t, runner_log, pod_log(cluster.root, NAMESPACE, t, "triton"), NAMESPACE))]  # fmt: skip
        peak = max((d for _, d in recorder.desired_changes), default=None)
        figures = figures_between(marks) | {
            "peak_desired_replicas": peak, "offered_per_s": OFFERED_PER_S, "workers": WORKERS,
            "requests": dict(statuses), "recorder_errors": dict(recorder.errors),
            "hpa_conditions": {c["type"]: f"{c['status']} {c['reason']}: {c.get('message')}"
                               for c in hpa(api).get("status", {}).get("conditions", [])},
        }  # fmt: skip
        write_results(recorder, figures, starts, marks, (minimum, maximum), hpa(api))
        print(f"\nload step of {OFFERED_PER_S:.0f} requests/s ({WORKERS} in flight at most) "
              f"through {address}:8000: {json.dumps(figures)}; results in {RESULTS}")  # fmt: skip
        for start in starts:
            print(start.describe())
    assert peak is not None and minimum < peak <= maximum
    assert statuses[OK] > 0
    assert new_pods and starts, "no new pod's cold start could be read"


def figures_between(marks: dict[str, float]) -> dict[str, float]:
    """Seconds from the step to the decision and to the first new pod Ready, and from the end
    of the load back to minReplicas (the decision) and to the extra pods gone."""
    spans = {"step_to_decision_s": ("step", "decision"),
             "step_to_first_new_pod_ready_s": ("step", "new pod Ready"),
             "load_stop_to_min_replicas_decision_s": ("load stopped", "back at min"),
             "load_stop_to_extra_pods_gone_s": ("load stopped", "extra pods gone")}  # fmt: skip
    return {name: round(marks[end] - marks[start], 1)
            for name, (start, end) in spans.items() if start in marks and end in marks}  # fmt: skip


def write_results(recorder: Recorder, figures: dict[str, Any], starts: list[ColdStart],
                  marks: dict[str, float], bounds: tuple[int, int],
                  hpa_object: dict[str, Any]) -> None:  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    with (RESULTS / "step.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "time_s",
                "offered_per_s",
                "served_per_s",
                "p50_s",
                "p99_s",
                *METRICS,
                "desired_replicas",
                "spec_replicas",
                "ready_replicas",
            ]
        )
        for row in recorder.rows:
            writer.writerow(
                [
                    f"{row.time_s:.1f}",
                    row.offered_per_s,
                    row.served_per_s,
                    row.p50_s,
                    row.p99_s,
                    *(row.metrics.get(m) for m in METRICS),
                    row.desired_replicas,
                    row.spec_replicas,
                    row.ready_replicas,
                ]
            )
    (RESULTS / "figures.json").write_text(json.dumps(
        {**figures, "cold_starts": [{**asdict(s), "total_s": s.total_s} for s in starts]},
        indent=2) + "\n")  # fmt: skip
    targets = {}
    for metric in hpa_object["spec"]["metrics"]:
        name = metric["pods"]["metric"]["name"]
        targets[name] = quantity_value(metric["pods"]["target"]["averageValue"])
    if not recorder.rows:
        return
    plot_cluster_step(
        recorder.rows, targets,
        {name: at - recorder.origin for name, at in marks.items()}, bounds,
        RESULTS / "step.png",
        f"cpu-hpa on make cluster: {OFFERED_PER_S:.0f} requests/s step, real HPA controller",
    )  # fmt: skip
