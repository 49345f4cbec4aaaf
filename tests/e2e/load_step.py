"""The autoscaling load step on `make cluster`, whichever autoscaler makes the HPA (the cpu-hpa
overlay's own, or KEDA's from cpu-keda): from minReplicas, an open-loop step of requests through
the Service's ClusterIP until the HPA controller decides to scale out and a new pod is Ready,
then nothing until the Deployment is back at minReplicas. Recorded every 5 s (autoscaling_record)
and drawn; the figures are the seconds between those moments, and where the requests' time went
before the first new pod was Ready (step_breakdown).

The generator holds more requests in flight than the minimum replicas' queues absorb
(IN_FLIGHT): a step that only a few requests beyond the pods' concurrency reach would leave the
overload on the client and the HTTP path, where Triton's queue signals do not see it, so that
whether the controller scales would depend on this machine's speed."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from inference_tools.autoscaling.hpa_spec import quantity_value
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import ClusterLayout
from lab.autoscaling.plots import plot_cluster_step
from lab.reliability.load import LoadRecord, open_loop_http

from tests.e2e.autoscaling_record import ColdStart, Recorder, cold_start, current_metrics, pod_log
from tests.e2e.conftest import NAMESPACE, wait_for
from tests.e2e.step_breakdown import breakdown

# The policy's three signals, in the order of the HPA's metrics and the ScaledObject's triggers.
METRICS = ("triton_queue_time_per_request_us", "triton_pending_requests",
           "triton_requests_per_second")  # fmt: skip
# Well beyond what the CPU Tritons serve on this 2-core machine however many there are (they
# share its two cores; two served 130 to 250 requests/s in earlier runs).
OFFERED_PER_S = 400.0
# Requests in flight at most. Each Triton pod holds up to 64 queued requests per model (the
# queue policy) besides the batches it executes; 64 in flight over two pods let the overload
# stay in the generator's own queue and the HTTP path (measured: docs/autoscaling.md), 256 fill
# the encoder's queues past both queue targets whatever the machine's speed.
IN_FLIGHT = 256
BASELINE_SECONDS = 15.0
# Load goes on this long after the first new pod is Ready, to see the scaled-out pods serve.
AFTER_READY_SECONDS = 30.0
# The hard bound on the load, whatever happens.
LOAD_LIMIT_SECONDS = 300.0
# Waits (not figures): scrape 15 s + rules 15 s + the adapter's relist or KEDA's poll + HPA
# sync 15 s, and pods that start on a loaded 2-core machine.
METRICS_TIMEOUT = 240.0
DECISION_TIMEOUT = 240.0
READY_TIMEOUT = 300.0
BACK_TIMEOUT = 420.0
# One more row of the series after the last pod has gone.
ROW_PAUSE_SECONDS = 5.0


@dataclass(frozen=True)
class Autoscaler:
    """The HPA under test: its name, and the label of the path its metrics come through."""

    name: str
    hpa: str
    metrics_path: str


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


def hpa_object(api: KubeApi, name: str) -> dict[str, Any]:
    return dict(api.get(f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/"
                        f"{name}"))  # fmt: skip


def first_after(changes: list[tuple[float, int]], after: float,
                accept: Callable[[int], bool]) -> float | None:  # fmt: skip
    return next((at for at, value in changes if at >= after and accept(value)), None)


def figures_between(marks: dict[str, float]) -> dict[str, float]:
    """Seconds from the step to the decision and to the first new pod Ready, and from the end
    of the load back to minReplicas (the decision) and to the extra pods gone."""
    spans = {"step_to_decision_s": ("step", "decision"),
             "step_to_first_new_pod_ready_s": ("step", "new pod Ready"),
             "load_stop_to_min_replicas_decision_s": ("load stopped", "back at min"),
             "load_stop_to_extra_pods_gone_s": ("load stopped", "extra pods gone")}  # fmt: skip
    return {name: round(marks[end] - marks[start], 1)
            for name, (start, end) in spans.items() if start in marks and end in marks}  # fmt: skip


def targets_of(hpa: dict[str, Any]) -> dict[str, float]:
    """Each metric's target per pod, under the names the rows use (METRICS, in order)."""
    found = {}
    for name, metric in zip(METRICS, hpa["spec"]["metrics"], strict=False):
        source = metric.get("pods") or metric.get("external") or {}
        found[name] = quantity_value(source["target"]["averageValue"])
    return found


@dataclass
class StepResult:
    figures: dict[str, Any]
    requests: Counter[str]
    new_pods: int
    cold_starts: list[ColdStart]


def run_load_step(api: KubeApi, cluster: ClusterLayout, prometheus_url: str,
                  autoscaler: Autoscaler, results: Path) -> StepResult:  # fmt: skip
    """The step, from the HPA at minReplicas with every metric to the Deployment back there;
    the series, figures, breakdown and plot written to `results` whatever happened."""
    spec = hpa_object(api, autoscaler.hpa)["spec"]
    minimum, maximum = spec["minReplicas"], spec["maxReplicas"]
    wait_for("the HPA at minReplicas with its metrics",
             lambda: (s := hpa_object(api, autoscaler.hpa).get("status", {})).get(
                 "desiredReplicas") == minimum
             and len(current_metrics(s, METRICS)) == len(METRICS) and settled(api, minimum),
             timeout=METRICS_TIMEOUT, interval=1.0)  # fmt: skip
    address = api.get(f"/api/v1/namespaces/{NAMESPACE}/services/triton")["spec"]["clusterIP"]
    wall_minus_monotonic = time.time() - time.monotonic()
    recorder = Recorder(api, NAMESPACE, hpa_name=autoscaler.hpa, metric_names=METRICS).start()
    before = {p["metadata"]["uid"] for p in pods(api)}
    record, stop = LoadRecord(), threading.Event()
    # The moments the figures are measured between (monotonic seconds), as they happen.
    marks: dict[str, float] = {}
    try:
        time.sleep(BASELINE_SECONDS)
        record = LoadRecord()
        marks["step"] = record.started_at
        load = threading.Thread(target=open_loop_http, args=(f"{address}:8000", OFFERED_PER_S,
                                LOAD_LIMIT_SECONDS), kwargs={"workers": IN_FLIGHT, "stop": stop,
                                "record": record}, daemon=True)  # fmt: skip
        load.start()
        marks["decision"] = wait_for(
            f"{autoscaler.name}'s scale-out decision",
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
        result = summarise(api, cluster, prometheus_url, autoscaler, recorder, record, marks,
                           before, wall_minus_monotonic)  # fmt: skip
        write_results(results, recorder, record, result, marks, (minimum, maximum),
                      targets_of(hpa_object(api, autoscaler.hpa)), autoscaler)  # fmt: skip
        print(f"\n{autoscaler.name}: load step of {OFFERED_PER_S:.0f} requests/s ({IN_FLIGHT} in "
              f"flight at most) through {address}:8000: {json.dumps(result.figures)}; results "
              f"in {results}")  # fmt: skip
        for start in result.cold_starts:
            print(start.describe())
    return result


def summarise(api: KubeApi, cluster: ClusterLayout, prometheus_url: str, autoscaler: Autoscaler,
              recorder: Recorder, record: LoadRecord, marks: dict[str, float], before: set[str],
              wall_minus_monotonic: float) -> StepResult:  # fmt: skip
    statuses = Counter(o.status for o in record.snapshot())
    new_pods = [t for uid, t in recorder.pods.items() if uid not in before]
    runner_log = cluster.log_file("pod-runner").read_text(errors="replace")
    starts = [s for t in new_pods if (s := cold_start(
        t, runner_log, pod_log(cluster.root, NAMESPACE, t, "triton"), NAMESPACE))]  # fmt: skip
    peak = max((d for _, d in recorder.desired_changes), default=None)
    # The overload before any new pod serves: from the step to the first new pod Ready (or to
    # the end of the load where none became Ready).
    end = marks.get("new pod Ready", marks.get("load stopped", time.monotonic()))
    overload = None
    if "step" in marks and end - marks["step"] >= 20:
        try:
            overload = breakdown(record, 0.0, end - marks["step"], prometheus_url, NAMESPACE,
                                 end + wall_minus_monotonic)  # fmt: skip
        except OSError as error:
            print(f"no breakdown: Prometheus did not answer ({error})")
    hpa = hpa_object(api, autoscaler.hpa)
    figures = figures_between(marks) | {
        "autoscaler": autoscaler.name, "peak_desired_replicas": peak,
        "offered_per_s": OFFERED_PER_S, "in_flight_at_most": IN_FLIGHT,
        "requests": dict(statuses), "recorder_errors": dict(recorder.errors),
        "targets": targets_of(hpa),
        "overload_breakdown": overload.as_dict() if overload else None,
        "hpa_conditions": {c["type"]: f"{c['status']} {c['reason']}: {c.get('message')}"
                           for c in hpa.get("status", {}).get("conditions", [])},
    }  # fmt: skip
    if overload:
        print(f"\nwhere the time went before the first new pod was Ready: {overload.describe()}")
    return StepResult(figures, statuses, len(new_pods), starts)


def write_results(results: Path, recorder: Recorder, record: LoadRecord, result: StepResult,
                  marks: dict[str, float], bounds: tuple[int, int], targets: dict[str, float],
                  autoscaler: Autoscaler) -> None:  # fmt: skip
    results.mkdir(parents=True, exist_ok=True)
    # Every request, for what is computed later from them (the seconds over the objective the
    # simulator's comparison counts, lab/autoscaling/cluster_step.py).
    with (results / "requests.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["due_s", "latency_s", "status", "waited_s"])
        writer.writerows([f"{o.sent_at_s:.4f}", f"{o.latency_s:.4f}", o.status, f"{o.waited_s:.4f}"]
                         for o in record.snapshot())  # fmt: skip
    with (results / "step.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["time_s", "offered_per_s", "served_per_s", "p50_s", "p99_s", *METRICS,
                         "desired_replicas", "spec_replicas", "ready_replicas"])  # fmt: skip
        for row in recorder.rows:
            writer.writerow([
                f"{row.time_s:.1f}", row.offered_per_s, row.served_per_s, row.p50_s, row.p99_s,
                *(row.metrics.get(m) for m in METRICS), row.desired_replicas, row.spec_replicas,
                row.ready_replicas,
            ])  # fmt: skip
    step_at = marks.get("step", recorder.origin) - recorder.origin
    (results / "figures.json").write_text(json.dumps(
        {**result.figures, "step_at_s": round(step_at, 1),
         "marks_after_step_s": {name: round(at - marks["step"], 1) for name, at in marks.items()}
         if "step" in marks else {},
         "cold_starts": [{**asdict(s), "total_s": s.total_s} for s in result.cold_starts]},
        indent=2) + "\n")  # fmt: skip
    if not recorder.rows:
        return
    plot_cluster_step(
        recorder.rows, targets,
        {name: at - recorder.origin for name, at in marks.items()}, bounds,
        results / "step.png",
        f"{autoscaler.name} on make cluster: {OFFERED_PER_S:.0f} requests/s step, "
        f"{IN_FLIGHT} in flight at most, real HPA controller",
        metrics_path=autoscaler.metrics_path,
    )  # fmt: skip
