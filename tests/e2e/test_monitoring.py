"""The monitoring component's ServiceMonitor, turned into Prometheus's configuration by the real
Prometheus Operator, and a real Prometheus running that configuration: Triton's nv_inference_*
series of a pod arrive from the pod's IP with the labels the ServiceMonitor asks for
(kubecluster/monitoring.py says why Prometheus runs on the host)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from inference_tools.autoscaling.servicemonitor import LocalTarget, scrape_configs
from inference_tools.manifests.render import render
from inference_tools.prometheus_runner import LocalPrometheus
from kubecluster import monitoring
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import ClusterLayout

from python_backend.contract import ENSEMBLE
from tests.e2e.conftest import LOCAL_OVERLAYS, NAMESPACE, Kubectl, wait_for
from tests.e2e.test_readiness import serving_pod
from tests.e2e.test_rolling_update import BODY

pytestmark = pytest.mark.e2e

REQUESTS = 5
# Two scrape intervals of the ServiceMonitor (15 s) and the discovery's first sync.
ARRIVAL_TIMEOUT_SECONDS = 90


@pytest.fixture(scope="module")
def operator(kubectl: Kubectl, cluster: ClusterLayout) -> Iterator[None]:
    """Every CRD of the operator's release, the Prometheus object, the operator itself."""
    crds = []
    for crd in monitoring.operator_crds():
        result = kubectl.run("apply", "--server-side", "-f", str(crd))
        crds += [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *crds)
    # Built (or its build checked) before the operator starts: a cold build takes minutes.
    version = monitoring.prometheus_version(monitoring.prometheus_binary(cluster))
    resources = monitoring.prometheus_resources(version)
    documents = "".join("---\n" + yaml.safe_dump(r) for r in resources)
    kubectl.run("apply", "--server-side", "-f", "-", input_text=documents)
    try:
        monitoring.start_operator(cluster)
        yield
    finally:
        monitoring.stop(cluster)


def service_monitor(kubectl: Kubectl) -> dict[str, Any]:
    """The ServiceMonitor exactly as the cpu-hpa overlay renders it."""
    rendered = kubectl.run("kustomize", str(LOCAL_OVERLAYS / "cpu-hpa")).stdout
    found = [d for d in yaml.safe_load_all(rendered) if d and d["kind"] == "ServiceMonitor"]
    assert len(found) == 1, found
    return dict(found[0])


def infer(address: str) -> int:
    connection = http.client.HTTPConnection(address, 8000, timeout=30)
    try:
        connection.request("POST", f"/v2/models/{ENSEMBLE}/infer", body=BODY)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_the_operator_turns_the_servicemonitor_into_a_scrape_job(
    kubectl: Kubectl, api: KubeApi, operator: None
) -> None:
    monitor = service_monitor(kubectl)
    kubectl.run("apply", "--server-side", "-f", "-", input_text=yaml.safe_dump(monitor))
    applied_at = time.monotonic()
    job = f"serviceMonitor/{NAMESPACE}/{monitor['metadata']['name']}/0"
    wait_for(f"the operator's scrape job {job}", lambda: job in monitoring.scrape_jobs(api),
             timeout=60)  # fmt: skip
    generated_after = time.monotonic() - applied_at
    config = monitoring.generated_config(api) or {}
    scrape = next(j for j in config["scrape_configs"] if j["job_name"] == job)
    discovery = scrape["kubernetes_sd_configs"][0]
    targets = {r.get("target_label") for r in scrape["relabel_configs"]}
    print(
        f"\noperator {monitoring.OPERATOR_TOOL.version()}: scrape job {job} generated "
        f"{generated_after:.1f} s after the ServiceMonitor was applied; discovery role "
        f"{discovery['role']} in {discovery.get('namespaces', {}).get('names')}, "
        f"{len(scrape['relabel_configs'])} relabellings, target labels "
        f"{sorted(t for t in targets if t and not t.startswith('__'))}"
    )
    assert discovery["namespaces"]["names"] == [NAMESPACE]
    # targetLabels: the Service's labels, which the PrometheusRule's selectors expect.
    for label in monitor["spec"]["targetLabels"]:
        assert label.replace(".", "_").replace("/", "_") in targets, label
    assert {"namespace", "service", "pod", "endpoint", "job"} <= targets


def test_tritons_series_arrive_in_prometheus_with_the_servicemonitors_labels(
    kubectl: Kubectl, api: KubeApi, cluster: ClusterLayout, cpu_release: None, operator: None
) -> None:
    override = monitoring.PROMETHEUS_OVERRIDE
    if override and not monitoring.has_kubernetes_discovery(Path(override), cluster.root):
        pytest.fail(f"PROMETHEUS_BINARY={override} has no Kubernetes service discovery "
                    "(Debian's build leaves it out): unset it to use the pinned build")  # fmt: skip
    server = f"https://{api.host}:{api.port}"
    prometheus = monitoring.start_prometheus(cluster, api, server)
    # The ServiceMonitor applied by the scenario before; the configuration started with it.
    monitor = service_monitor(kubectl)
    started_at = time.monotonic()
    pod = wait_for("a ready Triton pod", lambda: serving_pod(api), timeout=300)
    name, address = pod["metadata"]["name"], pod["status"]["podIP"]
    assert all(infer(address) == 200 for _ in range(REQUESTS))
    promql = f'nv_inference_count{{model="{ENSEMBLE}", pod="{name}"}} >= {REQUESTS}'
    try:
        series = wait_for(
            f"{promql} in Prometheus",
            lambda: monitoring.query(prometheus, promql),
            timeout=ARRIVAL_TIMEOUT_SECONDS,
            interval=1.0,
        )
    except AssertionError as error:
        raise AssertionError(f"{error}; targets: {monitoring.targets(prometheus)}") from None
    arrived_after = time.monotonic() - started_at
    labels = series[0]["metric"]
    endpoint = monitor["spec"]["endpoints"][0]
    version = monitoring.prometheus_version(monitoring.prometheus_binary(cluster))
    print(
        f"\nPrometheus {version} (operator {monitoring.OPERATOR_TOOL.version()}): "
        f"{ENSEMBLE}'s nv_inference_count of {name} = "
        f"{series[0]['value'][1]} {arrived_after:.1f} s after Prometheus started; "
        f"labels {json.dumps(labels, sort_keys=True)}"
    )
    assert labels["instance"] == f"{address}:8002"
    assert labels["namespace"] == NAMESPACE
    assert labels["service"] == "triton"
    assert labels["endpoint"] == endpoint["port"]
    # The operator names the job after the Service (no jobLabel in the ServiceMonitor).
    assert labels["job"] == "triton"
    # targetLabels: the Service's labels, as the PrometheusRule's selectors expect them.
    for label in monitor["spec"]["targetLabels"]:
        key = label.replace(".", "_").replace("/", "_").replace("-", "_")
        assert labels[key] == pod["metadata"]["labels"][label], key
    # The local stand-in (inference_tools.autoscaling.servicemonitor, which the calibration and
    # the local autoscaling loop use without a cluster) must label the same pod's series as the
    # operator's job does: a Prometheus on its scrape job, against the same pod.
    rendered = render(LOCAL_OVERLAYS / "cpu-hpa")
    local_job = scrape_configs(rendered, [LocalTarget(f"{address}:8002", name)], "1s")
    with LocalPrometheus(
        {"scrape_configs": local_job}, work_dir=cluster.root / "local-prom"
    ) as local:
        emulated = wait_for(
            "the local stand-in's series",
            lambda: monitoring.query(local.url, f'nv_inference_count{{model="{ENSEMBLE}"}}'),
            timeout=ARRIVAL_TIMEOUT_SECONDS, interval=1.0,
        )[0]["metric"]  # fmt: skip
    print(f"local stand-in's labels {json.dumps(emulated, sort_keys=True)}")
    assert emulated == labels
