"""The HPA-model scenario's recording tooling, without a cluster (so it runs in `make test`): the
exporter's series, the controller's requests read from the adapter's log, and one recorded sync
assembled from snapshots and Prometheus's answer at the request's instant."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from lab.autoscaling.hpa_replay import RecordedPod

import tests.e2e.hpa_model_record as record
from tests.e2e.hpa_model_record import (
    LoadSeries,
    MetricRequest,
    Snapshot,
    Snapshots,
    assemble,
    controller_requests,
    write_snapshots,
)

# A line of prometheus-adapter v0.12.0's request log at verbosity 3, as make cluster wrote it.
CONTROLLER_LINE = (
    'I1207 23:46:18.230385   18672 httplog.go:132] "HTTP" verb="GET" '
    'URI="/apis/custom.metrics.k8s.io/v1beta2/namespaces/hpa-model/pods/%2A/hpa_model_load'
    '?labelSelector=app.kubernetes.io%2Fname%3Dhpa-model" latency="7.106895ms" '
    'userAgent="kube-controller-manager/v1.34.4 (linux/amd64) kubernetes/$Format/'
    'system:serviceaccount:kube-system:horizontal-pod-autoscaler" audit-ID="5259650e" '
    'srcIP="10.244.0.1:40000" resp=200'
)


def pod(name: str, phase: str = "Running", created: str = "2026-12-07T23:00:00Z",
        deleting: bool = False) -> dict[str, Any]:  # fmt: skip
    metadata: dict[str, Any] = {"name": name, "creationTimestamp": created}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-07T23:10:00Z"
    return {"metadata": metadata, "status": {"phase": phase}}


class PodsApi:
    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods

    def get(self, path: str) -> dict[str, Any]:
        return {"items": self.pods}


def test_the_demand_is_spread_over_the_running_pods_less_those_left_out() -> None:
    api = PodsApi([pod("b", created="2026-12-07T23:01:00Z"), pod("a"), pod("c", "Pending"),
                   pod("d", deleting=True)])  # fmt: skip
    series = LoadSeries(api, "ns", "selector")  # type: ignore[arg-type]
    try:
        series.demand = 70
        assert series.running_pods() == ["a", "b"]
        assert series.exposition().splitlines()[1:] == [
            'hpa_model_load{namespace="ns",pod="a"} 35.000',
            'hpa_model_load{namespace="ns",pod="b"} 35.000',
        ]
        series.left_out = {"a"}
        # The missing pod still takes its share of the load: only its series is gone.
        assert series.exposition().splitlines()[1:] == [
            'hpa_model_load{namespace="ns",pod="b"} 35.000'
        ]
        series.silent = True
        assert series.exposition() == ""
    finally:
        series.server.server_close()


def test_the_controllers_requests_are_read_from_the_adapters_log() -> None:
    mine = CONTROLLER_LINE.replace("hpa_model_load", "triton_pending_requests")
    requests = controller_requests("\n".join(["noise", CONTROLLER_LINE, mine]), "hpa-model", 2026)
    logged = datetime(2026, 12, 7, 23, 46, 18, 230385, tzinfo=UTC).timestamp()
    assert requests == [MetricRequest(pytest.approx(logged), 200)]


def test_a_sync_takes_what_stood_before_it_and_the_count_set_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running = (RecordedPod("a", "Running", True, False), RecordedPod("b", "Running", False, False))
    snapshots = Snapshots(None, "ns", "d", "h", "s")  # type: ignore[arg-type]
    snapshots.taken = [
        Snapshot(99.5, 2, running[:1], {}),
        Snapshot(100.8, 2, running, {}),
        # The scale this sync set, read 3 s later.
        Snapshot(103.0, 3, running, {"currentMetrics": [{"type": "Pods", "pods": {
            "metric": {"name": "hpa_model_load"}, "current": {"averageValue": "12500m"}}}],
            "conditions": [{"type": "ScalingActive", "reason": "ValidMetricFound"}]}),
    ]  # fmt: skip
    asked: list[float] = []

    def values_at(url: str, namespace: str, at: float) -> dict[str, float]:
        asked.append(at)
        return {"a": 12.5, "b": 12.5, "gone": 1.0}

    monkeypatch.setattr(record, "values_at", values_at)
    [sync] = assemble([MetricRequest(101.0, 200)], snapshots, "http://p", "ns")
    assert asked == [101.0]
    assert (sync.replicas, sync.pods, sync.desired_replicas) == (2, running, 3)
    # A pod the API no longer lists is not one the adapter answers for.
    assert sync.values == {"hpa_model_load": {"a": 12.5, "b": 12.5}}
    assert sync.current_averages == {"hpa_model_load": 12.5}
    assert sync.conditions == {"ScalingActive": "ValidMetricFound"}


def test_a_failed_request_records_no_values_and_an_unsettled_sync_is_left_out() -> None:
    snapshots = Snapshots(None, "ns", "d", "h", "s")  # type: ignore[arg-type]
    snapshots.taken = [Snapshot(10.0, 2, (), {}), Snapshot(13.0, 2, (), {})]
    [failed] = assemble([MetricRequest(11.0, 404)], snapshots, "http://p", "ns")
    assert failed.values == {"hpa_model_load": None}
    # The last snapshot is only 0.5 s after the request: what the sync set is not known yet.
    assert assemble([MetricRequest(12.5, 200)], snapshots, "http://p", "ns") == []


def test_the_series_is_written_a_row_per_snapshot(tmp_path: Path) -> None:
    snapshots = Snapshots(None, "ns", "d", "h", "s")  # type: ignore[arg-type]
    pods = (RecordedPod("a", "Running", True, False), RecordedPod("b", "Pending", False, False))
    status = {"currentReplicas": 2, "desiredReplicas": 3, "currentMetrics": [{"type": "Pods",
              "pods": {"metric": {"name": "hpa_model_load"},
                       "current": {"averageValue": "11667m"}}}]}  # fmt: skip
    snapshots.taken = [Snapshot(101.0, 3, pods, status)]
    write_snapshots(snapshots, 100.0, tmp_path / "series.csv")
    assert (tmp_path / "series.csv").read_text().splitlines() == [
        "time_s,spec_replicas,status_current_replicas,status_desired_replicas,current_average,"
        "pods,running,ready",
        "1.0,3,2,3,hpa_model_load=11.667,2,1,1",
    ]
