"""The autoscaling scenario's tooling, without a cluster (so it runs in `make test`): the host
Prometheus's targets follow a Service's EndpointSlices with the ServiceMonitor's labels (checked
by Debian's promtool), the adapter gets the rules `adapter-values` renders and is registered as
an aggregated API, the aggregator's certificates chain to the right CAs, a cold start is split
from the runner's and Triton's log lines, and each 5 s row counts the load it saw."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import pytest
import yaml
from inference_tools.autoscaling import rendered_settings
from kubecluster import metrics_adapter, service_prometheus
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import BRIDGE_ADDRESS
from kubecluster.pki import FRONT_PROXY_CLIENT, ensure_pki, ensure_service_cert
from lab.autoscaling.plots import ClusterRow
from lab.reliability.load import NOT_SENT, OK, LoadRecord, Outcome

from tests.e2e.autoscaling_record import (
    PodTimeline,
    Recorder,
    cold_start,
    current_metrics,
    runner_events,
)
from tests.e2e.conftest import LOCAL_OVERLAYS
from tests.e2e.step_breakdown import client_side

OVERLAY = LOCAL_OVERLAYS / "cpu-hpa-scaling"


def endpoint(pod: str, address: str, ready: bool, terminating: bool = False) -> dict[str, object]:
    return {"addresses": [address], "targetRef": {"kind": "Pod", "name": pod},
            "conditions": {"ready": ready, "terminating": terminating}}  # fmt: skip


def test_targets_are_the_services_pods_ready_or_not_but_not_terminating() -> None:
    slices = [
        {"ports": [{"name": "http", "port": 8000}, {"name": "metrics", "port": 8002}],
         "endpoints": [endpoint("b", "10.244.0.3", ready=False),
                       endpoint("a", "10.244.0.2", ready=True),
                       endpoint("c", "10.244.0.4", ready=False, terminating=True)]},
        {"ports": [{"name": "grpc", "port": 8001}],
         "endpoints": [endpoint("d", "10.244.0.5", ready=True)]},
    ]  # fmt: skip
    targets = service_prometheus.endpoint_targets(slices, "metrics")
    assert [(t.pod, t.address) for t in targets] == [
        ("a", "10.244.0.2:8002"),
        ("b", "10.244.0.3:8002"),
    ]


@pytest.mark.kubernetes
def test_the_host_prometheus_configuration_is_the_servicemonitors_with_file_targets(
    tmp_path: Path,
) -> None:
    rendered = rendered_settings.render(OVERLAY)
    config = service_prometheus.configuration(rendered, tmp_path)
    (tmp_path / "prometheus.yaml").write_text(yaml.safe_dump(config))
    (tmp_path / "rules.yaml").write_text(
        yaml.safe_dump(rendered_settings.prometheus_rule_file(rendered))
    )
    targets = [service_prometheus.LocalTarget("10.244.0.2:8002", "triton-abc")]
    service_prometheus.write_targets(rendered, tmp_path, targets)
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "serviceMonitor/inference/triton/0"
    assert "static_configs" not in job
    (group,) = json.loads(Path(job["file_sd_configs"][0]["files"][0]).read_text())
    assert group["targets"] == ["10.244.0.2:8002"]
    assert group["labels"]["__meta_kubernetes_pod_name"] == "triton-abc"
    assert group["labels"]["__meta_kubernetes_service_name"] == "triton"
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(promtool).is_file():
        pytest.skip("no promtool (Debian's prometheus package)")
    # The real Prometheus's own check: the file targets, the relabelling and every rule.
    checked = subprocess.run([promtool, "check", "config", str(tmp_path / "prometheus.yaml")],
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.kubernetes
def test_the_adapter_gets_the_rules_adapter_values_renders() -> None:
    rendered = rendered_settings.render(OVERLAY)
    config = metrics_adapter.adapter_config(rendered_settings.adapter_values(rendered))
    assert config["rules"] == rendered_settings.adapter_config(rendered)["rules"]
    assert len(config["rules"]) == 3


def test_the_apiservices_route_to_the_adapters_endpoint_on_the_bridge() -> None:
    documents = metrics_adapter.resources(b"-----BEGIN CERTIFICATE-----\n", 34567)
    by_kind: dict[str, list[dict[str, object]]] = {}
    for document in documents:
        by_kind.setdefault(str(document["kind"]), []).append(document)
    services = {d["metadata"]["name"]: d["spec"] for d in by_kind["APIService"]}  # type: ignore[index]
    assert set(services) == {"v1beta2.custom.metrics.k8s.io", "v1beta1.custom.metrics.k8s.io"}
    for spec in services.values():
        assert spec["service"] == {"name": "prometheus-adapter", "namespace": "monitoring",  # type: ignore[index]
                                   "port": 443}  # fmt: skip
        assert base64.b64decode(spec["caBundle"]) == b"-----BEGIN CERTIFICATE-----\n"  # type: ignore[index]
    (endpoint_slice,) = by_kind["EndpointSlice"]
    assert endpoint_slice["endpoints"] == [  # type: ignore[comparison-overlap]
        {"addresses": [BRIDGE_ADDRESS], "conditions": {"ready": True}}
    ]
    (service,) = by_kind["Service"]
    assert "selector" not in service["spec"]  # type: ignore[operator]
    assert service["spec"]["ports"][0]["targetPort"] == 34567  # type: ignore[index]


def _openssl(*args: str) -> str:
    return subprocess.run(["openssl", *args], capture_output=True, text=True,
                          check=True).stdout  # fmt: skip


def test_the_aggregators_certificates_chain_to_their_own_cas(tmp_path: Path) -> None:
    pki = ensure_pki(tmp_path / "pki")
    # The front proxy's client is of the front proxy's CA only: the main CA does not vouch for
    # it, so no other client of the cluster can pass identity headers.
    _openssl("verify", "-CAfile", str(pki.front_proxy_ca_cert), str(pki.front_proxy_client_cert))
    wrong = subprocess.run(
        ["openssl", "verify", "-CAfile", str(pki.ca_cert), str(pki.front_proxy_client_cert)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert wrong.returncode != 0
    assert f"CN = {FRONT_PROXY_CLIENT}" in _openssl(
        "x509", "-noout", "-subject", "-in", str(pki.front_proxy_client_cert)
    )
    cert, _ = ensure_service_cert(pki, "monitoring", "prometheus-adapter")
    _openssl("verify", "-CAfile", str(pki.ca_cert), str(cert))
    names = _openssl("x509", "-noout", "-ext", "subjectAltName", "-in", str(cert))
    assert "DNS:prometheus-adapter.monitoring.svc" in names


def _stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_a_cold_start_is_split_from_the_runner_and_triton_logs() -> None:
    base = datetime(2026, 12, 7, 19, 0, 0, tzinfo=UTC).timestamp()
    runner_log = "\n".join([
        f"{_stamp(base + 0.4)} inference/triton-x: bound here, pod IP 10.244.0.9",
        f"{_stamp(base + 0.5)} inference/triton-other: bound here, pod IP 10.244.0.8",
        f"{_stamp(base + 0.6)} inference/triton-x/http-guard: started, pid 1 ... 7",
        f"{_stamp(base + 1.9)} inference/triton-x/triton: started, pid 1 ... 9",
        f"{_stamp(base + 50.0)} inference/triton-x/triton: started, pid 1 ... 11",
    ])  # fmt: skip
    triton_log = "\n".join([
        "I1207 19:00:05.000000 1 model_lifecycle.cc:838] \"successfully loaded 'tokenizer'\"",
        "I1207 19:00:07.500000 1 model_lifecycle.cc:838] \"successfully loaded 'text_embedding'\"",
    ])  # fmt: skip
    assert runner_events(runner_log, "inference", "triton-x") == {
        "bound": base + 0.4, "http-guard": base + 0.6, "triton": base + 1.9,
    }  # fmt: skip
    timeline = PodTimeline("triton-x", "uid", created=base, seen=base + 0.3,
                           started=base + 12.0, ready=base + 14.5)  # fmt: skip
    split = cold_start(timeline, runner_log, triton_log, "inference")
    assert split is not None
    parts = (split.scheduling_s, split.process_start_s, split.model_load_s,
             split.startup_probe_s, split.first_canary_s)  # fmt: skip
    assert parts == pytest.approx((0.4, 1.5, 5.6, 4.5, 2.5))
    assert split.total_s == pytest.approx(14.5)
    # A pod not yet Ready has no cold start to report.
    unready = PodTimeline("triton-x", "uid", created=base, seen=base + 0.3)
    assert cold_start(unready, runner_log, triton_log, "inference") is None


def test_each_rows_load_counts_what_was_due_and_what_was_answered_in_its_5_s() -> None:
    recorder = Recorder(api=cast(KubeApi, None), namespace="inference")
    recorder.origin = 100.0
    record = LoadRecord()
    record.started_at = 110.0
    record.outcomes += [
        Outcome(sent_at_s=1.0, latency_s=0.5, status=OK),
        # Due in the first window, answered in the second.
        Outcome(sent_at_s=4.0, latency_s=2.0, status=OK),
        # Due, never sent: offered, not served.
        Outcome(sent_at_s=3.0, latency_s=0.0, status=NOT_SENT),
    ]
    for time_s in (15.0, 20.0):
        recorder.rows.append(ClusterRow(time_s, 0.0, 0.0, None, None, {}, 2, 2, 2))
    recorder.fill_load(record)
    first, second = recorder.rows
    assert (first.offered_per_s, first.served_per_s, first.p50_s) == (0.6, 0.2, 0.5)
    assert (second.offered_per_s, second.served_per_s, second.p50_s) == (0.0, 0.2, 2.0)


def test_the_step_breakdown_splits_the_clients_wait_from_the_time_on_the_wire() -> None:
    record = LoadRecord()
    record.outcomes += [
        # Due at 0 s, sent at 1 s, answered at 1.5 s.
        Outcome(sent_at_s=0.0, latency_s=1.5, status=OK, waited_s=1.0),
        Outcome(sent_at_s=2.0, latency_s=0.5, status=OK),
        # Refused and never sent: not answered, not counted.
        Outcome(sent_at_s=3.0, latency_s=0.1, status="503"),
        Outcome(sent_at_s=3.5, latency_s=0.0, status=NOT_SENT),
        # Due after the window.
        Outcome(sent_at_s=9.0, latency_s=0.5, status=OK),
    ]
    client = client_side(record, 0.0, 5.0)
    assert client["answered"] == 2
    assert (client["latency_ms"], client["wait_ms"], client["wire_ms"]) == (1000, 500, 500)
    # Little's law over the window: 1 s on the wire in 5 s.
    assert client["in_flight"] == pytest.approx(0.2)


def test_the_hpas_metrics_are_read_by_name_or_in_the_specs_order() -> None:
    status = {"currentMetrics": [
        {"type": "External", "external": {"metric": {"name": "s0-prometheus"},
                                          "current": {"averageValue": "37728m"}}},
        {"type": "Pods", "pods": {"metric": {"name": "triton_pending_requests"},
                                  "current": {"averageValue": "2"}}},
    ]}  # fmt: skip
    assert current_metrics(status) == {"s0-prometheus": 37.728, "triton_pending_requests": 2}
    assert current_metrics(status, ("queue", "pending")) == {"queue": 37.728, "pending": 2}
