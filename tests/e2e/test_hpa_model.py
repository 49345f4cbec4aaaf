"""The lab's HPA model (`lab/autoscaling/hpa.py`, which `make simulate` runs) against the real
HPA controller of kube-controller-manager v1.34.4.

A Deployment of tiny pods (the serving image's HTTP guard, idle: no Triton) and an HPA with the
shipped behavior (`kustomize/components/autoscaling-hpa`: bounds, stabilization windows,
policies) on one `Pods` metric whose values the test sets: a series served by a Prometheus and
prometheus-adapter as the HPA's metrics reach it in production (hpa_model_record.py says how).
The test drives a sequence of demand (at the target, a step up, a step down, a dip shorter than
the scale-down window, a pod whose metric is missing on a rise and on a fall, no metric at all)
and records every sync of the controller with what it saw. The model then replays the same
inputs at the same times; its replica counts must be the controller's, sync by sync, within one
sync period. The recording lands in .work/e2e/hpa-model/: `recorded.json` (the format of the
committed fixture tests/lab/autoscaling/fixtures/hpa-controller-v1.34.4.json that make test
replays) and `series.csv` (replicas, the HPA's status and the pods, once a second).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from inference_tools.prometheus_runner import LocalPrometheus
from kubecluster import metrics_adapter
from kubecluster.kubeapi import ApiError, KubeApi
from kubecluster.layout import ClusterLayout
from lab.autoscaling.hpa_replay import Recording, disagreements, dump, replay

from tests.checkout import CHECKOUT, KUSTOMIZE_DIR
from tests.e2e.conftest import Kubectl, wait_for
from tests.e2e.hpa_model_record import (
    METRIC,
    LoadSeries,
    Snapshots,
    adapter_rule,
    assemble,
    controller_requests,
    log_offset,
    prometheus_config,
    read_from,
    values_at,
    write_snapshots,
)
from tests.e2e.test_autoscaling import apply_documents

pytestmark = pytest.mark.e2e

NAMESPACE = "hpa-model"
NAME = "hpa-model"
SELECTOR = "app.kubernetes.io%2Fname%3Dhpa-model"
SHIPPED_HPA = (
    KUSTOMIZE_DIR / "components" / "autoscaling-hpa" / "triton-horizontalpodautoscaler.yaml"
)
# Per-pod target of the test's metric: demand 20 is two pods at the target.
TARGET = 10
RESULTS = CHECKOUT / ".work" / "e2e" / "hpa-model"
SERVING_IMAGE = "ghcr.io/example/scalable-inference-server:0.1.0"
# How long a new pod runs before it is Ready.
NOT_READY_SECONDS = 20
# One sync period of the controller (kube-controller-manager's default).
SYNC_SECONDS = 15
# Waits, not figures: the adapter's first relist, pods on a loaded 2-core machine.
SETUP_TIMEOUT = 240.0


@dataclass(frozen=True)
class Phase:
    what: str
    demand: float
    seconds: float
    left_out: int = 0
    silent: bool = False


# Demand in units of the metric; the pods share it evenly. Replica counts that follow when the
# controller sees each phase fully (target 10 per pod, tolerance 0.1, min 2, max 10):
SEQUENCE = (
    Phase("at the target", 20, 45),
    # 35 per pod on 2 pods asks for 7; the scale-up policies allow 6 (2 + 4), then 70/6 = 11.7
    # per pod is 1.17 times the target, past the tolerance: 7.
    Phase("step up", 70, 90),
    # 32/7 = 4.6 per pod asks for 4, after the 30 s scale-down window.
    Phase("step down", 32, 75),
    # 3 per pod asks for 2 at one sync at most; the window keeps 4.
    Phase("a dip shorter than the scale-down window", 12, 12),
    Phase("back", 32, 45),
    # 14 per pod on 3 of 4 pods: without the missing pod 1.4 times the target (6 pods); counted
    # at 0 on a rise, it averages 10.5, within the tolerance: no change.
    Phase("one pod's metric missing, demand up", 56, 45, left_out=1),
    # 4 per pod on 3 of 4: the missing pod counts at the target on a fall, 5.5 on average: 3.
    Phase("one pod's metric missing, demand down", 16, 60, left_out=1),
    # No series at all: the metrics API has nothing, the controller holds its count.
    Phase("no metric at all", 16, 30, silent=True),
    Phase("metrics back", 20, 45),
)


def shipped_behavior() -> tuple[dict[str, Any], int, int]:
    shipped = yaml.safe_load(SHIPPED_HPA.read_text())["spec"]
    return shipped["behavior"], shipped["minReplicas"], shipped["maxReplicas"]


def hpa_manifest() -> dict[str, Any]:
    behavior, minimum, maximum = shipped_behavior()
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME},
            "minReplicas": minimum, "maxReplicas": maximum,
            "metrics": [{"type": "Pods", "pods": {
                "metric": {"name": METRIC},
                "target": {"type": "AverageValue", "averageValue": str(TARGET)}}}],
            "behavior": behavior,
        },
    }  # fmt: skip


def deployment_manifest(replicas: int) -> dict[str, Any]:
    labels = {"app.kubernetes.io/name": NAME}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {
                "terminationGracePeriodSeconds": 5,
                # As the base Deployment: no API token, no Service variables.
                "automountServiceAccountToken": False, "enableServiceLinks": False,
                # The base Deployment's user: the pod runner takes the image's user from here.
                "securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                    "runAsGroup": 10001},
                # The smallest process the pod runner can run from the serving image: the
                # HTTP guard, idle (nothing calls it). Ready 20 s after it starts, as a
                # Triton pod is Running but not Ready while it loads its models: the
                # controller sees such pods, with their metric, for a sync or two.
                "containers": [{
                    "name": "idle", "image": SERVING_IMAGE,
                    "command": ["/opt/scalable-inference-server/bin/triton-http-guard"],
                    "args": ["--listen=0.0.0.0:8080"],
                    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
                    "readinessProbe": {"tcpSocket": {"port": 8080},
                                       "initialDelaySeconds": NOT_READY_SECONDS,
                                       "periodSeconds": 5},
                }],
            }},
        },
    }  # fmt: skip


def namespace_gone(api: KubeApi) -> bool:
    try:
        api.get(f"/api/v1/namespaces/{NAMESPACE}")
    except ApiError as error:
        return error.status == 404
    return False


@pytest.fixture(scope="module")
def load_series(api: KubeApi) -> Iterator[LoadSeries]:
    if not namespace_gone(api):
        # Left by an interrupted run.
        api.delete(f"/api/v1/namespaces/{NAMESPACE}")
        wait_for("the last run's namespace to go", lambda: namespace_gone(api), timeout=180,
                 interval=1.0)  # fmt: skip
    api.create("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                      "metadata": {"name": NAMESPACE}})  # fmt: skip
    series = LoadSeries(api, NAMESPACE, SELECTOR).start()
    try:
        yield series
    finally:
        series.stop()
        api.delete(f"/api/v1/namespaces/{NAMESPACE}")
        wait_for("the scenario's namespace to go", lambda: namespace_gone(api), timeout=180,
                 interval=1.0)  # fmt: skip


@pytest.fixture(scope="module")
def prometheus(load_series: LoadSeries) -> Iterator[LocalPrometheus]:
    shutil.rmtree(RESULTS / "prometheus", ignore_errors=True)
    server = LocalPrometheus(prometheus_config(load_series.port), work_dir=RESULTS / "prometheus")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_the_hpa_model_decides_as_the_real_controller(
    kubectl: Kubectl, api: KubeApi, cluster: ClusterLayout, load_series: LoadSeries,
    prometheus: LocalPrometheus,
) -> None:  # fmt: skip
    load_series.demand = SEQUENCE[0].demand
    api.create(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments", deployment_manifest(2))
    wait_for("two ready pods with their series in Prometheus",
             lambda: len(values_at(prometheus.url, NAMESPACE, time.time())) == 2,
             timeout=SETUP_TIMEOUT, interval=1.0)  # fmt: skip
    adapter_log = cluster.log_file(metrics_adapter.NAME)
    offset = log_offset(adapter_log)
    # The adapter lists the series it can serve at its start: they exist by now.
    metrics_adapter.start(cluster, api, apply_documents(kubectl), prometheus.url,
                          {"rules": {"custom": [adapter_rule()]}}, verbosity=3)  # fmt: skip
    snapshots = Snapshots(api, NAMESPACE, NAME, NAME, SELECTOR)
    started = time.time()
    try:
        metrics_adapter.wait_available(cluster, api)
        manifest = hpa_manifest()
        api.create(f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers",
                   manifest)  # fmt: skip
        snapshots.start()
        wait_for("the controller's first metric of the scenario",
                 lambda: snapshots.taken[-1].hpa_status.get("currentMetrics"),
                 timeout=SETUP_TIMEOUT, interval=1.0)  # fmt: skip
        for phase in SEQUENCE:
            # The oldest pods: the ReplicaSet removes the newest first when it scales in.
            load_series.left_out = set(load_series.running_pods()[: phase.left_out])
            load_series.silent = phase.silent
            load_series.demand = phase.demand
            print(f"{time.time() - started:6.1f} s: {phase.what}: demand {phase.demand}, "
                  f"left out {sorted(load_series.left_out)}, silent {phase.silent}")  # fmt: skip
            time.sleep(phase.seconds)
        # One more sync sees the last phase through.
        time.sleep(SYNC_SECONDS)
    finally:
        snapshots.stop()
        metrics_adapter.stop(cluster)
        metrics_adapter.unregister(api)
    requests = controller_requests(read_from(adapter_log, offset), NAMESPACE,
                                   datetime.now(UTC).year)  # fmt: skip
    syncs = assemble(requests, snapshots, prometheus.url, NAMESPACE)
    recording = Recording(
        hpa=manifest, syncs=tuple(syncs),
        source=f"make cluster (kube-controller-manager v1.34.4), "
               f"{datetime.fromtimestamp(started, UTC):%Y-%m-%d %H:%M} UTC, "
               f"tests/e2e/test_hpa_model.py",
    )  # fmt: skip
    dump(recording, RESULTS / "recorded.json")
    write_snapshots(snapshots, requests[0].at if requests else started, RESULTS / "series.csv")
    comparisons = replay(recording)
    for comparison in comparisons:
        print(("   " if comparison.agrees else "!! ") + comparison.describe())
    exact = sum(c.agrees for c in comparisons)
    print(f"{len(comparisons)} syncs recorded, model equal to the controller at {exact}; "
          f"snapshot errors {dict(snapshots.errors)}, exporter {dict(load_series.scrapes)}; "
          f"{RESULTS / 'recorded.json'}")  # fmt: skip
    desired = [s.desired_replicas for s in syncs]
    minimum = hpa_manifest()["spec"]["minReplicas"]
    # Not degenerate: the controller scaled out and back in, and each sync was recorded.
    assert len(syncs) >= 0.8 * sum(p.seconds for p in SEQUENCE) / SYNC_SECONDS, len(syncs)
    assert max(desired) > minimum and desired[-1] < max(desired), desired
    # The values recorded are those the controller averaged (status.currentMetrics), but for
    # a scrape that lands between the adapter's query and the recorded instant.
    mismatched = [c.describe() for c in comparisons if c.average_mismatches()]
    assert len(mismatched) <= len(comparisons) // 10, mismatched
    assert not disagreements(comparisons, timing_tolerance_syncs=1), [
        c.describe() for c in disagreements(comparisons, timing_tolerance_syncs=1)
    ]
