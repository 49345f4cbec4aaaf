"""Autoscaling through the real controllers: prometheus-adapter (built from its pinned release)
serves Triton's recorded metrics as `custom.metrics.k8s.io` through the API server's
aggregator, and kube-controller-manager's HPA controller scales the cpu-hpa Deployment under a
load step through the Service's ClusterIP (load_step.py, shared with KEDA's scenario); the new
pods are real Tritons. The step is recorded every 5 s and drawn (.work/e2e/autoscaling/), and
each new pod's cold start is split into its parts. Prometheus and the adapter run on the host
(kubecluster/service_prometheus.py and kubecluster/metrics_adapter.py say why)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from inference_tools.autoscaling import rendered_settings
from inference_tools.manifests.render import Render
from kubecluster import metrics_adapter, service_prometheus
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import ClusterLayout
from lab.reliability.load import OK

from tests.checkout import CHECKOUT
from tests.e2e.autoscaling_record import current_metrics
from tests.e2e.conftest import (
    LOCAL_OVERLAYS,
    NAMESPACE,
    Kubectl,
    apply_documents,
    apply_release,
    wait_for,
)
from tests.e2e.load_step import (
    METRICS,
    METRICS_TIMEOUT,
    READY_TIMEOUT,
    Autoscaler,
    pods,
    run_load_step,
    settled,
)

pytestmark = pytest.mark.e2e

OVERLAY = "cpu-hpa-scaling"
RESULTS = CHECKOUT / ".work" / "e2e" / "autoscaling"
STEP = Autoscaler("cpu-hpa", "triton", "prometheus-adapter")


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


@pytest.mark.load_step
def test_a_load_step_scales_out_through_the_real_controllers_and_back(
    api: KubeApi, cluster: ClusterLayout, autoscaled: str
) -> None:
    result = run_load_step(api, cluster, autoscaled, STEP, RESULTS)
    spec = hpa(api)["spec"]
    peak = result.figures["peak_desired_replicas"]
    assert peak is not None and spec["minReplicas"] < peak <= spec["maxReplicas"]
    assert result.requests[OK] > 0
    assert result.new_pods and result.cold_starts, "no new pod's cold start could be read"
