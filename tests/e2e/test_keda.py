"""KEDA deciding the cpu-keda overlay on `make cluster`: its operator, metrics API server and
admission webhooks, built from the pinned release (kubecluster/keda.py), turn the overlay's
ScaledObject into the HPA `keda-hpa-triton`, serve its three External metrics through the
aggregator to the real HPA controller, refuse a second ScaledObject for the same Deployment,
and hold the replicas on the ScaledObject's fallback while Prometheus is down.

The ScaledObject is applied as the overlay renders it: its triggers query
`prometheus-operated.monitoring.svc:9090`, a Service routed to the host Prometheus (the one the
adapter scenario runs, service_prometheus.py), whose name KEDA's processes resolve through a
private /etc/hosts (kubecluster/host_names.py). Last, the cpu-hpa scenario's load step
(load_step.py) runs on KEDA's HPA: its External metrics, the same three signals."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from inference_tools.autoscaling import rendered_settings
from inference_tools.autoscaling.hpa_spec import quantity_value
from inference_tools.manifests.render import Render
from kubecluster import keda, service_prometheus
from kubecluster.kubeapi import ApiError, KubeApi
from kubecluster.layout import BRIDGE_ADDRESS, ClusterLayout
from lab.reliability.load import OK

from tests.checkout import CHECKOUT
from tests.e2e.conftest import (
    LOCAL_OVERLAYS,
    NAMESPACE,
    Kubectl,
    apply_documents,
    apply_release,
    wait_for,
)
from tests.e2e.load_step import Autoscaler, run_load_step

pytestmark = pytest.mark.e2e

OVERLAY = "cpu-keda-scaling"
HPA = "keda-hpa-triton"
RESULTS = CHECKOUT / ".work" / "e2e" / "autoscaling-keda"
SCALED_OBJECTS = f"/apis/keda.sh/v1alpha1/namespaces/{NAMESPACE}/scaledobjects"
# Waits, not figures: pods starting on a loaded 2-core machine; scrape 15 s + rules 15 s before
# the first recorded series, then KEDA's poll and the HPA's 15 s sync.
READY_TIMEOUT = 300.0
METRICS_TIMEOUT = 240.0
# kube-controller-manager's default HPA sync period, and how many of its syncs the fallback must
# hold the count through.
HPA_SYNC_SECONDS = 15.0
HOLD_SYNCS = 3
# Prometheus down: 3 failed polls of 5 s each, counted per trigger, then the HPA's next sync.
FALLBACK_TIMEOUT = 180.0


def get_or_none(api: KubeApi, path: str) -> dict[str, Any] | None:
    try:
        return dict(api.get(path))
    except ApiError as error:
        if error.status == 404:
            return None
        raise


def hpa(api: KubeApi) -> dict[str, Any] | None:
    return get_or_none(
        api, f"/apis/autoscaling/v2/namespaces/{NAMESPACE}/horizontalpodautoscalers/{HPA}"
    )


def scaled_object(api: KubeApi, name: str = "triton") -> dict[str, Any]:
    return dict(api.get(f"{SCALED_OBJECTS}/{name}"))


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == kind), {})  # fmt: skip


def external_values(status: dict[str, Any]) -> dict[str, float | None]:
    """The HPA's status.currentMetrics: each External metric's current average, by name."""
    found: dict[str, float | None] = {}
    for metric in status.get("currentMetrics") or []:
        external = metric.get("external") or {}
        name = (external.get("metric") or {}).get("name")
        if name:
            value = (external.get("current") or {}).get("averageValue")
            found[name] = None if value is None else quantity_value(value)
    return found


def triggers_happy(so: dict[str, Any], count: int) -> bool:
    """Every trigger's last query answered (KEDA keeps a health entry per metric where a
    fallback is set)."""
    health = (so.get("status") or {}).get("health") or {}
    return len(health) == count and all(h.get("status") == "Happy" for h in health.values())


def not_fallback_values(current: dict[str, float | None], targets: list[float]) -> bool:
    """No metric at its target exactly: what the HPA reads while KEDA answers that trigger with
    its fallback (`replicas x target`, over as many pods). Each trigger falls back on its own."""
    values = list(current.values())
    return len(values) == len(targets) and all(
        v is not None and v != pytest.approx(t, rel=1e-4)
        for v, t in zip(values, targets, strict=True)
    )


def patch_minimum(kubectl: Kubectl, replicas: int) -> None:
    patch = json.dumps({"spec": {"minReplicaCount": replicas}})
    kubectl.run("patch", "scaledobject/triton", f"--namespace={NAMESPACE}", "--type=merge",
                f"--patch={patch}")  # fmt: skip


def pods(api: KubeApi) -> list[dict[str, Any]]:
    return list(api.get(f"/api/v1/namespaces/{NAMESPACE}/pods")["items"])


def deployment(api: KubeApi) -> dict[str, Any]:
    return dict(api.get(f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/triton"))


def ready_pods(api: KubeApi) -> int:
    return int(deployment(api).get("status", {}).get("readyReplicas") or 0)


def restore_cpu_release(kubectl: Kubectl, api: KubeApi) -> None:
    """The cpu overlay again, as the other scenarios expect it: the ScaledObjects go first,
    while the operator still runs to remove its finalizer and the HPA it made; then the
    Deployment the HPA scaled (a plain apply would not take spec.replicas back)."""
    kubectl.run("delete", "scaledobjects.keda.sh", "--all", f"--namespace={NAMESPACE}",
                "--ignore-not-found", "--timeout=120s")  # fmt: skip
    kubectl.run("delete", "deployment/triton", f"--namespace={NAMESPACE}", "--ignore-not-found",
                "--wait=false")  # fmt: skip
    wait_for("the autoscaled pods to go", lambda: not pods(api), timeout=180, interval=1.0)
    apply_release(kubectl, "cpu")


@pytest.fixture(scope="module")
def rendered() -> Render:
    return rendered_settings.render(LOCAL_OVERLAYS / OVERLAY)


@dataclass(frozen=True)
class Scenario:
    # When the overlay was applied (time.monotonic).
    applied: float
    prometheus_url: str


@pytest.fixture(scope="module")
def keda_running(
    kubectl: Kubectl, api: KubeApi, cluster: ClusterLayout, monitoring_crds: list[str],
    rendered: Render,
) -> Iterator[Scenario]:  # fmt: skip
    """KEDA's CRDs installed, the host Prometheus (on the bridge, behind prometheus-operated)
    and KEDA's three processes registered, then the overlay applied."""
    release = keda.release_dir()
    crds = keda.crds(release)
    names = []
    for crd in crds:
        result = kubectl.run("apply", "--server-side", "-f", str(crd))
        names += [line.split()[0] for line in result.stdout.splitlines() if line.strip()]
    kubectl.run("wait", "--for=condition=Established", "--timeout=60s", *names)
    url, targets = service_prometheus.start(cluster, api, rendered, address=BRIDGE_ADDRESS)
    try:
        answered = keda.start(cluster, api, apply_documents(kubectl), int(url.rsplit(":", 1)[1]))
        figures = ", ".join(f"{name} {seconds:.1f}" for name, seconds in answered.items())
        print(f"\nKEDA {keda.version()}: answered after (s) {figures}")
        applied = time.monotonic()
        apply_release(kubectl, OVERLAY)
        yield Scenario(applied, url)
    finally:
        try:
            restore_cpu_release(kubectl, api)
        finally:
            keda.stop(cluster)
            keda.unregister(api)
            targets.stop()
            service_prometheus.stop(cluster)


def test_keda_makes_the_hpa_and_serves_its_external_metrics(
    kubectl: Kubectl, api: KubeApi, rendered: Render, keda_running: Scenario
) -> None:
    applied = keda_running.applied
    made = wait_for("KEDA's HPA", lambda: hpa(api), timeout=120, interval=0.5)
    hpa_after = time.monotonic() - applied
    spec = rendered.one("ScaledObject", "triton")["spec"]
    triggers = spec["triggers"]
    metrics = made["spec"]["metrics"]
    assert [m["type"] for m in metrics] == ["External"] * len(triggers), metrics
    assert [m["external"]["target"]["type"] for m in metrics] == ["AverageValue"] * len(triggers)
    # KEDA names each metric s<index>-prometheus and labels it with its ScaledObject.
    metric_names = [m["external"]["metric"]["name"] for m in metrics]
    assert metric_names == [f"s{i}-prometheus" for i in range(len(triggers))], metric_names
    for metric in metrics:
        selector = metric["external"]["metric"]["selector"]["matchLabels"]
        assert selector == {"scaledobject.keda.sh/name": "triton"}, selector
    assert [quantity_value(m["external"]["target"]["averageValue"]) for m in metrics] == [
        pytest.approx(float(t["metadata"]["threshold"])) for t in triggers
    ]
    assert made["spec"]["minReplicas"] == spec["minReplicaCount"]
    assert made["spec"]["maxReplicas"] == spec["maxReplicaCount"]
    assert made["spec"]["behavior"] == spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert made["spec"]["scaleTargetRef"]["name"] == "triton"

    wait_for(f"{spec['minReplicaCount']} pods ready",
             lambda: ready_pods(api) >= spec["minReplicaCount"], timeout=READY_TIMEOUT,
             interval=1.0)  # fmt: skip
    pods_ready_after = time.monotonic() - applied

    def served(name: str) -> float | None:
        path = (f"/apis/external.metrics.k8s.io/v1beta1/namespaces/{NAMESPACE}/{name}"
                "?labelSelector=scaledobject.keda.sh%2Fname%3Dtriton")  # fmt: skip
        result = kubectl.run("get", "--raw", path, check=False)
        if result.returncode != 0:
            return None
        items = json.loads(result.stdout)["items"]
        return quantity_value(items[0]["value"]) if items else None

    # Until the recording rules have series, every query fails (`ignoreNullValues: "false"`)
    # and KEDA may already be on its fallback: wait for each trigger answered by Prometheus.
    happy = wait_for(
        "every trigger answered by Prometheus, no fallback",
        lambda: (so := scaled_object(api)) and triggers_happy(so, len(triggers))
        and condition(so, "Fallback").get("status") != "True" and so,
        timeout=METRICS_TIMEOUT, interval=1.0,
    )  # fmt: skip
    happy_after = time.monotonic() - applied
    values = {name: wait_for(f"{name} through external.metrics.k8s.io",
                             lambda n=name: (v := served(n)) is not None and [v],
                             timeout=METRICS_TIMEOUT, interval=2.0)[0]
              for name in metric_names}  # fmt: skip
    served_after = time.monotonic() - applied
    # The HPA's own read of the three, past any sync it made on fallback values (each at its
    # target exactly: `replicas x target` over as many pods).
    targets = [float(t["metadata"]["threshold"]) for t in triggers]
    status = wait_for(
        "the HPA's currentMetrics, read from Prometheus",
        lambda: (s := (hpa(api) or {}).get("status", {})) and len(external_values(s)) == 3
        and all(v is not None for v in external_values(s).values())
        and not_fallback_values(external_values(s), targets) and s,
        timeout=METRICS_TIMEOUT, interval=1.0,
    )  # fmt: skip
    current_after = time.monotonic() - applied
    active = condition({"status": status}, "ScalingActive")
    assert active.get("status") == "True", active
    ready = wait_for("the ScaledObject Ready",
                     lambda: condition(scaled_object(api), "Ready").get("status") == "True"
                     and scaled_object(api), timeout=60, interval=1.0)  # fmt: skip
    # Idle pods still serve the readiness probe's canary inference every few seconds: the
    # request rate is above the activation threshold (0), so KEDA reports the triggers active.
    active_so = condition(ready, "Active")
    print(
        f"\nKEDA {keda.version()}: HPA {HPA} created {hpa_after:.1f} s after the apply; "
        f"{spec['minReplicaCount']} pods ready after {pods_ready_after:.1f} s; every trigger "
        f"answered by Prometheus after {happy_after:.1f} s; every metric "
        f"served through external.metrics.k8s.io after {served_after:.1f} s ({values}); the HPA "
        f"controller's currentMetrics {external_values(status)} ({active['reason']}) after "
        f"{current_after:.1f} s; ScaledObject Ready ({condition(ready, 'Ready')['reason']}), "
        f"Active {active_so.get('status')} ({active_so.get('reason')})"
    )
    assert active_so.get("status") == "True", active_so
    assert happy["status"]["health"], happy["status"]


def test_keda_webhook_refuses_a_second_scaledobject_for_the_deployment(
    kubectl: Kubectl, api: KubeApi, rendered: Render, keda_running: Scenario
) -> None:
    # The first ScaledObject and its HPA made.
    wait_for("the first ScaledObject's HPA", lambda: hpa(api), timeout=120)
    second = copy.deepcopy(rendered.one("ScaledObject", "triton"))
    second["metadata"]["name"] = "triton-second"
    result = kubectl.run("apply", "--server-side", "-f", "-",
                         input_text=yaml.safe_dump(second), check=False)  # fmt: skip
    print(f"\nsecond ScaledObject refused: {result.stderr.strip()}")
    assert result.returncode != 0, result.stdout
    assert 'admission webhook "vscaledobject.kb.io" denied the request' in result.stderr
    # KEDA runs its checks from a Go map, in no fixed order: the workload's HPA (the first
    # ScaledObject's) and its ScaledObjects both refuse it, whichever comes first says why.
    workload = "the workload 'triton' of type 'apps/v1.Deployment' is already managed by the"
    reasons = (f"{workload} hpa '{HPA}'", f"{workload} ScaledObject 'triton'")
    assert any(reason in result.stderr for reason in reasons), result.stderr
    assert get_or_none(api, f"{SCALED_OBJECTS}/triton-second") is None


def test_keda_falls_back_while_prometheus_is_down_and_recovers(
    kubectl: Kubectl, api: KubeApi, cluster: ClusterLayout, rendered: Render,
    keda_running: Scenario,
) -> None:  # fmt: skip
    spec = rendered.one("ScaledObject", "triton")["spec"]
    fallback = spec["fallback"]
    assert fallback["behavior"] == "currentReplicasIfHigher"
    targets = [float(t["metadata"]["threshold"]) for t in spec["triggers"]]
    # One replica above the minimum, through the ScaledObject (KEDA moves the HPA's bound), so
    # that `currentReplicasIfHigher` has a current count above `fallback.replicas` to keep.
    minimum = spec["minReplicaCount"]
    raised = max(minimum, fallback["replicas"]) + 1
    patch_minimum(kubectl, raised)
    wait_for(f"{raised} pods ready", lambda: ready_pods(api) == raised
             and deployment(api)["spec"]["replicas"] == raised, timeout=READY_TIMEOUT,
             interval=1.0)  # fmt: skip
    wait_for("every trigger answered, no fallback, the HPA on Prometheus's values",
             lambda: (so := scaled_object(api)) and triggers_happy(so, len(targets))
             and condition(so, "Fallback").get("status") != "True"
             and len(current := external_values((hpa(api) or {}).get("status", {}))) == 3
             and not_fallback_values(current, targets),
             timeout=METRICS_TIMEOUT, interval=1.0)  # fmt: skip
    before = deployment(api)["spec"]["replicas"]
    expected = max(before, fallback["replicas"])
    stopped_at = time.monotonic()
    service_prometheus.pause(cluster)
    try:
        falling_back = wait_for(
            "the Fallback condition",
            lambda: (so := scaled_object(api)) and condition(so, "Fallback").get("status")
            == "True" and so,
            timeout=FALLBACK_TIMEOUT, interval=1.0,
        )  # fmt: skip
        fallback_after = time.monotonic() - stopped_at
        # Back to the overlay's minimum while Prometheus is still down: on the metrics alone
        # the HPA would go down to it; the fallback keeps the current count instead.
        patch_minimum(kubectl, minimum)
        # KEDA answers each metric with `replicas x target` (AverageValue): the HPA divides it
        # by the current pods, so once it has synced on the fallback each current average is
        # its target times expected/current, and it decides `expected` replicas.
        wait_for("KEDA's HPA at the overlay's minimum",
                 lambda: (hpa(api) or {}).get("spec", {}).get("minReplicas") == minimum,
                 timeout=60, interval=0.5)  # fmt: skip
        # Several of the HPA controller's syncs at that minimum: every count it and the
        # Deployment show must be the one the fallback keeps (a static fallback, or the metrics
        # of idle pods, would take it down to the minimum).
        seen: set[int | None] = set()
        held: dict[str, Any] = {}
        hold_until = time.monotonic() + HOLD_SYNCS * HPA_SYNC_SECONDS
        while time.monotonic() < hold_until:
            held = hpa(api) or {}
            seen |= {held.get("status", {}).get("desiredReplicas"),
                     deployment(api)["spec"]["replicas"]}  # fmt: skip
            time.sleep(1.0)
        replicas = deployment(api)["spec"]["replicas"]
        health = falling_back["status"].get("health") or {}
    finally:
        resumed_at = time.monotonic()
        service_prometheus.resume(cluster, keda_running.prometheus_url)
    cleared = wait_for(
        "the Fallback condition cleared",
        lambda: (so := scaled_object(api)) and condition(so, "Fallback").get("status") == "False"
        and so,
        timeout=FALLBACK_TIMEOUT, interval=1.0,
    )  # fmt: skip
    cleared_after = time.monotonic() - resumed_at
    print(
        f"\nPrometheus stopped with {before} replicas (minReplicaCount {raised}): Fallback "
        f"{condition(falling_back, 'Fallback')['reason']} after {fallback_after:.1f} s "
        f"(health {health}); minReplicaCount back to {minimum}: through "
        f"{HOLD_SYNCS * HPA_SYNC_SECONDS:.0f} s the HPA and the Deployment at {seen}, "
        f"the HPA's metrics "
        f"{external_values(held['status'])}, the Deployment at {replicas}; Prometheus back: "
        f"Fallback {condition(cleared, 'Fallback')['reason']} after {cleared_after:.1f} s"
    )
    failing = [h for h in health.values() if h.get("status") == "Failing"]
    assert failing and all(h["numberOfFailures"] > fallback["failureThreshold"] for h in failing)
    assert seen == {expected}, seen
    assert replicas == expected
    assert list(external_values(held["status"]).values()) == pytest.approx(
        [t * expected / before for t in targets], rel=1e-3
    ), held["status"]
    recovered = (cleared["status"].get("health") or {}).values()
    assert all(h.get("status") == "Happy" for h in recovered), cleared["status"]


@pytest.mark.load_step
def test_a_load_step_scales_out_through_kedas_hpa_and_back(
    api: KubeApi, cluster: ClusterLayout, keda_running: Scenario
) -> None:
    autoscaler = Autoscaler("cpu-keda", HPA, f"KEDA {keda.version()}")
    result = run_load_step(api, cluster, keda_running.prometheus_url, autoscaler, RESULTS)
    spec = (hpa(api) or {})["spec"]
    peak = result.figures["peak_desired_replicas"]
    assert peak is not None and spec["minReplicas"] < peak <= spec["maxReplicas"]
    assert result.requests[OK] > 0
    assert result.new_pods and result.cold_starts, "no new pod's cold start could be read"
