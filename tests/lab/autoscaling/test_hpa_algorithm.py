"""The HPA algorithm against the worked examples of the Kubernetes and KEDA documentation.

Sources: kubernetes.io "Horizontal Pod Autoscaling" (algorithm details, scaling policies,
stabilisation window, default behavior, tolerance), the HPA walkthrough (305% CPU -> 7 replicas),
the v1.33 configurable-tolerance post (50 replicas at 90% for 75% -> 60), and the KEDA
ScaledObject reference (metricType AverageValue vs Value).
"""

from __future__ import annotations

import itertools
import math

import pytest
import yaml
from inference_tools.autoscaling.hpa_spec import Behavior, HPASpec, MetricTarget
from lab.autoscaling.hpa import (
    HorizontalPodAutoscaler,
    Pod,
    Tolerances,
    replicas_for_external_metric,
    replicas_for_per_pod_metric,
)

LATENCY = MetricTarget("Pods", "latency", "AverageValue", 0.1)  # target 100m
TOLERANCE = Tolerances()


def pods(count: int, prefix: str = "pod", ready: bool = True) -> list[Pod]:
    return [Pod(f"{prefix}-{i}", ready) for i in range(count)]


def same_value(pod_list: list[Pod], value: float) -> dict[str, float]:
    return {p.name: value for p in pod_list}


def hpa_from_yaml(text: str) -> HorizontalPodAutoscaler:
    return HorizontalPodAutoscaler(HPASpec.from_manifest(yaml.safe_load(text)))


HPA_HEAD = """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: example}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: example}
  minReplicas: 1
  maxReplicas: 100
  metrics:
  - type: Pods
    pods:
      metric: {name: latency}
      target: {type: AverageValue, averageValue: 100m}
"""


def drive(hpa: HorizontalPodAutoscaler, start: int, value_for, times: list[float]) -> list[int]:
    """Run syncs at `times`; each sync writes its decision back as the new replica count."""
    replicas = start
    seen = []
    for now in times:
        current_pods = pods(replicas)
        decision = hpa.reconcile(now, replicas, current_pods, {"latency": value_for(current_pods)})
        replicas = decision.desired_replicas
        seen.append(replicas)
    return seen


# --- the ratio rule -------------------------------------------------------------------------


def test_ratio_rule_doubles_at_200m_for_100m_and_halves_at_50m() -> None:
    four = pods(4)
    assert replicas_for_per_pod_metric(4, four, same_value(four, 0.2), LATENCY, TOLERANCE)[0] == 8
    assert replicas_for_per_pod_metric(4, four, same_value(four, 0.05), LATENCY, TOLERANCE)[0] == 2


def test_ratio_rule_uses_the_average_over_pods() -> None:
    three = pods(3)
    values = {"pod-0": 0.3, "pod-1": 0.1, "pod-2": 0.2}  # average 200m
    replicas, average = replicas_for_per_pod_metric(3, three, values, LATENCY, TOLERANCE)
    assert (replicas, average) == (6, pytest.approx(0.2))


def test_cpu_walkthrough_305_percent_of_50_gives_7_replicas() -> None:
    cpu = MetricTarget("Resource", "cpu", "Utilization", 50)
    one = pods(1)
    assert replicas_for_per_pod_metric(1, one, {"pod-0": 305.0}, cpu, TOLERANCE)[0] == 7


def test_cpu_walkthrough_settles_at_7_when_the_load_spreads_over_the_pods() -> None:
    hpa = hpa_from_yaml(
        """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: php-apache}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: php-apache}
  minReplicas: 1
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 50}}
  behavior: {}
"""
    )
    replicas = 1
    for now in range(0, 300, 15):
        current = pods(replicas)
        # The same total load (305% of one pod's request) shared by however many pods run.
        load = same_value(current, 305.0 / replicas)
        replicas = hpa.reconcile(now, replicas, current, {"cpu": load}).desired_replicas
    assert replicas == 7


# --- tolerance ------------------------------------------------------------------------------


def test_tolerance_blog_example_50_replicas_at_90_percent_for_75_scale_to_60() -> None:
    cpu = MetricTarget("Resource", "cpu", "Utilization", 75)
    fifty = pods(50)
    assert replicas_for_per_pod_metric(50, fifty, same_value(fifty, 90), cpu, TOLERANCE)[0] == 60


def test_ratio_within_ten_percent_changes_nothing() -> None:
    cpu = MetricTarget("Resource", "cpu", "Utilization", 75)
    fifty = pods(50)
    # 80 / 75 = 1.067: within the default 0.1, though ceil(50 * 1.067) would be 54.
    assert replicas_for_per_pod_metric(50, fifty, same_value(fifty, 80), cpu, TOLERANCE)[0] == 50
    # 66 / 75 = 0.88: outside it.
    assert replicas_for_per_pod_metric(50, fifty, same_value(fifty, 66), cpu, TOLERANCE)[0] == 44


def test_configurable_scale_up_tolerance_of_5_percent_on_100mi_memory() -> None:
    hpa = hpa_from_yaml(
        """
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: memory}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: memory}
  maxReplicas: 10
  metrics:
  - type: Resource
    resource: {name: memory, target: {type: AverageValue, averageValue: 100Mi}}
  behavior:
    scaleUp: {tolerance: 0.05}
"""
    )
    assert hpa.tolerances() == Tolerances(scale_up=0.05, scale_down=0.1)
    four = pods(4)
    mib = 2**20
    at_104 = hpa.reconcile(0, 4, four, {"memory": same_value(four, 104 * mib)})
    assert at_104.desired_replicas == 4
    at_106 = hpa.reconcile(15, 4, four, {"memory": same_value(four, 106 * mib)})
    assert at_106.desired_replicas == 5  # ceil(4 * 1.06); the default 10% would have kept 4


# --- pods set aside -------------------------------------------------------------------------


def test_missing_metrics_count_at_target_on_scale_down() -> None:
    four = pods(4)
    values = {"pod-0": 0.05, "pod-1": 0.05, "pod-2": 0.05}  # pod-3 reports nothing
    # Without pod-3: ceil(3 * 0.5) = 2. With pod-3 at the target: (150m + 100m) / 4 -> 3.
    assert replicas_for_per_pod_metric(4, four, values, LATENCY, TOLERANCE)[0] == 3


def test_missing_metrics_count_at_zero_on_scale_up_and_can_cancel_it() -> None:
    four = pods(4)
    values = {"pod-0": 0.112, "pod-1": 0.112, "pod-2": 0.112}
    # 1.12 alone would scale up; with pod-3 at 0 the ratio is 0.84, a reversal: no change.
    assert replicas_for_per_pod_metric(4, four, values, LATENCY, TOLERANCE)[0] == 4


def test_pending_pods_count_at_zero_on_scale_up() -> None:
    starting = [Pod("pod-0"), Pod("pod-1", pending=True), Pod("pod-2", pending=True)]
    # One ready pod at 150%: alone it asks for 2, but with two pods starting the ratio is 0.5.
    assert replicas_for_per_pod_metric(3, starting, {"pod-0": 0.15}, LATENCY, TOLERANCE)[0] == 3
    # At 600% even the rebalanced ratio (2.0) asks for more: ceil(2.0 * 3) = 6.
    assert replicas_for_per_pod_metric(3, starting, {"pod-0": 0.6}, LATENCY, TOLERANCE)[0] == 6


def test_pending_pods_are_ignored_on_scale_down() -> None:
    starting = [Pod("pod-0"), Pod("pod-1", pending=True)]
    assert replicas_for_per_pod_metric(2, starting, {"pod-0": 0.0}, LATENCY, TOLERANCE)[0] == 0


# The controller (kube-controller-manager v1.34, replica_calculator.go groupPods) looks at
# readiness for CPU only: for any other metric a Running pod that is not Ready yet counts with
# its value, or as missing without one. Measured on make cluster (tests/e2e/test_hpa_model.py).
def test_a_running_pod_not_yet_ready_counts_with_its_value_for_a_pods_metric() -> None:
    starting = [Pod("pod-0"), Pod("pod-1", ready=False)]
    values = {"pod-0": 0.15, "pod-1": 0.15}
    # Both count: ratio 1.5 over two pods asks for 3 (set aside, pod-1 would cancel the rise).
    assert replicas_for_per_pod_metric(2, starting, values, LATENCY, TOLERANCE)[0] == 3


def test_a_running_pod_not_yet_ready_without_a_value_is_missing() -> None:
    starting = [Pod("pod-0"), Pod("pod-1", ready=False)]
    # Missing on a fall: counted at the target, (0 + 100m) / 2 = 0.5 -> ceil(0.5 * 2) = 1.
    assert replicas_for_per_pod_metric(2, starting, {"pod-0": 0.0}, LATENCY, TOLERANCE)[0] == 1


def test_a_pod_not_yet_ready_is_set_aside_for_cpu() -> None:
    cpu = MetricTarget("Resource", "cpu", "Utilization", 50)
    starting = [Pod("pod-0"), Pod("pod-1", ready=False)]
    values = {"pod-0": 100.0, "pod-1": 100.0}
    # pod-1 is set aside and counted at 0 on the rise: (100 + 0) / 2 = 50% -> no change.
    assert replicas_for_per_pod_metric(2, starting, values, cpu, TOLERANCE)[0] == 2


def test_missing_pods_are_not_filled_when_the_others_sit_on_the_target() -> None:
    four = pods(4)
    values = {"pod-0": 0.1, "pod-1": 0.1, "pod-2": 0.1}
    # Ratio exactly 1: the controller fills neither way and keeps the count.
    assert replicas_for_per_pod_metric(4, four, values, LATENCY, TOLERANCE)[0] == 4


# --- several metrics ------------------------------------------------------------------------


def two_metric_hpa() -> HorizontalPodAutoscaler:
    return hpa_from_yaml(
        HPA_HEAD
        + """
  - type: Pods
    pods:
      metric: {name: pending}
      target: {type: AverageValue, averageValue: "4"}
  behavior:
    scaleDown: {stabilizationWindowSeconds: 0}
"""
    )


def test_several_metrics_take_the_largest_proposal() -> None:
    hpa = two_metric_hpa()
    two = pods(2)
    decision = hpa.reconcile(
        0, 2, two, {"latency": same_value(two, 0.15), "pending": same_value(two, 10)}
    )
    assert [p.replicas for p in decision.proposals] == [3, 5]
    assert decision.desired_replicas == 5


def test_a_missing_metric_blocks_scale_down_but_not_scale_up() -> None:
    hpa = two_metric_hpa()
    four = pods(4)
    down = hpa.reconcile(0, 4, four, {"latency": same_value(four, 0.01), "pending": None})
    assert down.desired_replicas == 4
    up = hpa.reconcile(15, 4, four, {"latency": same_value(four, 0.2), "pending": None})
    assert up.desired_replicas == 8


# --- behavior: policies and windows --------------------------------------------------------


def test_default_behavior_matches_the_documented_defaults() -> None:
    documented = yaml.safe_load(
        """
scaleDown:
  stabilizationWindowSeconds: 300
  policies: [{type: Percent, value: 100, periodSeconds: 15}]
scaleUp:
  stabilizationWindowSeconds: 0
  policies:
  - {type: Percent, value: 100, periodSeconds: 15}
  - {type: Pods, value: 4, periodSeconds: 15}
  selectPolicy: Max
"""
    )
    parsed = Behavior.from_manifest(documented)
    default = Behavior.default()
    assert parsed.scale_down == default.scale_down
    assert set(parsed.scale_up.policies) == set(default.scale_up.policies)
    assert parsed.scale_up.stabilization_window_seconds == 0


def test_default_scale_up_adds_4_pods_or_100_percent_every_15_seconds() -> None:
    hpa = hpa_from_yaml(HPA_HEAD + "  behavior: {}\n")
    # Demand for far more replicas than allowed: each sync is capped by the policies.
    seen = drive(hpa, 1, lambda p: same_value(p, 10.0), [0, 15, 30, 45, 60])
    assert seen == [5, 10, 20, 40, 80]


def test_scale_up_events_inside_the_period_hold_further_growth() -> None:
    hpa = hpa_from_yaml(
        HPA_HEAD
        + """
  behavior:
    scaleUp:
      policies: [{type: Pods, value: 4, periodSeconds: 60}]
"""
    )
    seen = drive(hpa, 1, lambda p: same_value(p, 10.0), [0, 15, 30, 45, 61, 75])
    assert seen == [5, 5, 5, 5, 9, 9]


def test_scale_down_policies_docs_example_80_to_10() -> None:
    hpa = hpa_from_yaml(
        HPA_HEAD
        + """
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 0
      policies:
      - {type: Pods, value: 4, periodSeconds: 60}
      - {type: Percent, value: 10, periodSeconds: 60}
"""
    )
    total_demand = 10 * 0.1  # enough for exactly 10 replicas at the target

    def spread(current: list[Pod]) -> dict[str, float]:
        return same_value(current, total_demand / len(current))

    seen = drive(hpa, 80, spread, [61.0 * i for i in range(1, 16)])
    # 80 -> 72 (10% = 8), then 72 -> 64 (7.2 rounded up to 8); from 40 down, 4 at a time.
    assert seen[:2] == [72, 64]
    below_40 = [r for r in seen if r <= 40]
    assert all(a - b == 4 for a, b in itertools.pairwise(below_40) if b > 10)
    assert seen == [72, 64, 57, 51, 45, 40, 36, 32, 28, 24, 20, 16, 12, 10, 10]


def test_select_policy_min_removes_at_most_5_pods_per_minute() -> None:
    hpa = hpa_from_yaml(
        HPA_HEAD
        + """
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 0
      policies:
      - {type: Percent, value: 10, periodSeconds: 60}
      - {type: Pods, value: 5, periodSeconds: 60}
      selectPolicy: Min
"""
    )
    seen = drive(hpa, 100, lambda p: same_value(p, 0.0), [0, 15, 61, 122])
    # 10% of 100 would be 10 pods; Min keeps the smaller change, 5. Nothing more within 60 s.
    assert seen == [95, 95, 90, 85]


def test_select_policy_disabled_turns_scale_down_off() -> None:
    hpa = hpa_from_yaml(HPA_HEAD + "  behavior:\n    scaleDown: {selectPolicy: Disabled}\n")
    seen = drive(hpa, 10, lambda p: same_value(p, 0.0), [0, 400, 800])
    assert seen == [10, 10, 10]
    up = drive(hpa, 10, lambda p: same_value(p, 0.2), [1200])
    assert up == [20]  # scaling up is still on: 100% of 10 beats 4 pods


def test_scale_down_stabilization_window_keeps_the_highest_recent_recommendation() -> None:
    hpa = hpa_from_yaml(
        HPA_HEAD + "  behavior:\n    scaleDown: {stabilizationWindowSeconds: 300}\n"
    )
    times = [float(t) for t in range(0, 451, 15)]
    # 8 replicas' worth of demand at t=0, none after.
    replicas = 8
    by_time = {}
    for now in times:
        current = pods(replicas)
        demand = same_value(current, 0.1 if now == 0 else 0.0)
        replicas = hpa.reconcile(now, replicas, current, {"latency": demand}).desired_replicas
        by_time[now] = replicas
    assert all(by_time[t] == 8 for t in times if t < 300)
    # At 300 s the recommendation of t=0 has left the window: straight down to minReplicas.
    assert by_time[300.0] == 1


def test_min_and_max_replicas_bound_the_result() -> None:
    hpa = hpa_from_yaml(HPA_HEAD.replace("maxReplicas: 100", "maxReplicas: 6") + "  behavior: {}\n")
    assert drive(hpa, 2, lambda p: same_value(p, 1.0), [0]) == [6]
    assert (
        hpa.reconcile(15, 9, pods(9), {"latency": same_value(pods(9), 0.1)}).desired_replicas == 6
    )


def test_without_behavior_growth_is_capped_at_twice_or_4() -> None:
    hpa = hpa_from_yaml(HPA_HEAD)
    assert drive(hpa, 1, lambda p: same_value(p, 10.0), [0, 15, 30]) == [4, 8, 16]


# --- external metrics, as KEDA feeds them ---------------------------------------------------


def test_keda_average_value_20_messages_threshold_5_gives_4_replicas_whatever_the_count() -> None:
    queue = MetricTarget("External", "s0-queue", "AverageValue", 5)
    for current in (1, 3, 10):
        replicas, _ = replicas_for_external_metric(current, pods(current), 20, queue, TOLERANCE)
        assert replicas == 4


def test_keda_value_20ms_threshold_5ms_with_3_replicas_gives_12() -> None:
    latency = MetricTarget("External", "s0-latency", "Value", 0.005)
    replicas, _ = replicas_for_external_metric(3, pods(3), 0.020, latency, TOLERANCE)
    assert replicas == 12


# --- quantities -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("100m", 0.1),
        ("20k", 20000),
        ("1.5", 1.5),
        ("100Mi", 100 * 2**20),
        ("3", 3.0),
        ("2e3", 2000),
    ],
)
def test_targets_and_tolerances_read_as_kubernetes_quantities(written: str, value: float) -> None:
    manifest = yaml.safe_load(HPA_HEAD.replace("averageValue: 100m", f"averageValue: {written}"))
    manifest["spec"]["behavior"] = {"scaleUp": {"tolerance": written}}
    spec = HPASpec.from_manifest(manifest)
    assert math.isclose(spec.metrics[0].target, value)
    assert math.isclose(spec.behavior.scale_up.tolerance, value)


@pytest.mark.parametrize("written", ["fast", "1.5x", ".nan", "true"])
def test_a_target_that_is_not_a_quantity_is_refused(written: str) -> None:
    manifest = HPA_HEAD.replace("averageValue: 100m", f"averageValue: {written}")
    with pytest.raises(ValueError, match=r"quantity|number format"):
        HPASpec.from_manifest(yaml.safe_load(manifest))
