"""The HorizontalPodAutoscaler controller's decision, one sync period at a time, without a cluster.

Written from the Kubernetes documentation ("Horizontal Pod Autoscaling": algorithm details,
configurable scaling behavior, tolerance) and checked against its worked examples in
tests/lab/autoscaling/test_hpa_algorithm.py, then against the controller itself:
kube-controller-manager v1.34.4's source (pkg/controller/podautoscaler) and its recorded
decisions on `make cluster` (tests/e2e/test_hpa_model.py records them, and
tests/lab/autoscaling/test_hpa_against_controller.py replays the recording through this model).
What one `reconcile()` does, in the controller's order:

1. per metric, the ratio rule `desired = ceil(ready pods * current / target)`, skipped while
   the ratio lies within the tolerance (0.1 unless `behavior.scaleUp/scaleDown.tolerance` says
   otherwise). Pods still Pending are set aside, and so, for CPU only, are pods not Ready; a
   pod without a value is missing. Set-aside pods count at 0 on a scale-up, missing pods at 0
   on a scale-up and at the target on a scale-down, and a result that reverses direction is
   dropped;
2. the largest proposal over all metrics; a metric that cannot be read blocks a scale-down but
   not a scale-up;
3. the stabilisation windows: the lowest recommendation of the scale-up window and the highest
   of the scale-down window bound the change;
4. the rate policies (`Pods` / `Percent` per `periodSeconds`, `selectPolicy` Max/Min/Disabled)
   over the scale events still inside each period, then `minReplicas` / `maxReplicas`.

Metric values travel the way the metrics APIs carry them, as milli-unit integers, so averages
truncate the way the controller's do.

Where the model is not the controller: it takes the moment of each sync from its caller (the
controller syncs every 15 s after the end of the previous sync, a little more than 15 s apart,
so a recommendation or scale event exactly one period old has left its window; the model
expects strictly more than a period, which 15 s steps give); for CPU it sets aside every pod
that is not Ready, where the controller's `cpuInitializationPeriod` and
`delayOfInitialReadinessStatus` rules look at the pod's start and readiness times and the age
of the sample; and it reads values only for the pods it is given, where the controller also
averages a value the metrics API returns for a pod its own pod list no longer has.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from inference_tools.autoscaling.hpa_spec import (
    AVERAGE_VALUE,
    DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
    DEFAULT_TOLERANCE,
    EXTERNAL_METRIC,
    PODS_METRIC,
    PODS_POLICY,
    RESOURCE_METRIC,
    SELECT_DISABLED,
    SELECT_MIN,
    UTILIZATION,
    VALUE,
    Behavior,
    HPASpec,
    MetricTarget,
    ScalingRules,
)

DEFAULT_SYNC_PERIOD_SECONDS = 15
# The one resource whose readiness rules the controller applies (cpuInitializationPeriod).
CPU = "cpu"


class MetricUnavailableError(RuntimeError):
    """A metric could not be turned into a replica count (the controller's FailedGet...Metric)."""


@dataclass(frozen=True)
class Pod:
    """A pod of the scale target, as the controller groups it. `pending`: its containers have
    not started (phase Pending): set aside for every metric. `ready=False`: Running but not
    Ready: set aside for CPU only; for other metrics its value counts, and without one it is
    missing. Terminating pods are left out of the list by the caller, as the controller ignores
    them."""

    name: str
    ready: bool = True
    pending: bool = False


@dataclass(frozen=True)
class Tolerances:
    scale_up: float = DEFAULT_TOLERANCE
    scale_down: float = DEFAULT_TOLERANCE

    def within(self, usage_ratio: float) -> bool:
        return (1.0 - usage_ratio) <= self.scale_down and (usage_ratio - 1.0) <= self.scale_up


def _milli(value: float) -> int:
    # The metrics APIs carry values as milli-unit integers; Go's conversion truncates.
    return int(value * 1000)


def _plain_metric_ratio(values_milli: Sequence[int], target_milli: int) -> tuple[float, int]:
    average = sum(values_milli) // len(values_milli)
    return average / target_milli, average


def _utilization_ratio(values: Sequence[float], target_percent: float) -> tuple[float, int]:
    # Requests are equal across the pods of one Deployment, so the usage-weighted utilisation
    # is the mean of the per-pod percentages; the controller keeps it as a whole percent.
    utilization = int(sum(values) / len(values))
    return utilization / target_percent, utilization


def replicas_for_per_pod_metric(
    current_replicas: int,
    pods: Sequence[Pod],
    values: Mapping[str, float],
    target: MetricTarget,
    tolerances: Tolerances,
) -> tuple[int, float]:
    """The ratio rule for `Pods` and `Resource` metrics. Returns (replicas, current average).

    Which pods count, as the controller groups them: a Pending pod is set aside whatever it
    reports; a pod without a value is missing; readiness matters for CPU only, where a pod that
    is not Ready is set aside (for any other metric a Running pod's value counts, Ready or not).
    """
    cpu = target.source == RESOURCE_METRIC and target.name == CPU
    unready = {p.name for p in pods if p.pending or (cpu and not p.ready and p.name in values)}
    missing = [p.name for p in pods if p.name not in unready and p.name not in values]
    reported = {p.name: values[p.name] for p in pods if p.name not in unready and p.name in values}
    if not reported:
        raise MetricUnavailableError(f"{target.name}: no metrics for any ready pod")

    if target.target_type == UTILIZATION:
        # A pod without metrics counts as using its whole request (or the target, where that is
        # higher) on a scale-down.
        full_value = max(100.0, target.target)

        def ratio_of(samples: Sequence[float]) -> tuple[float, float]:
            ratio, utilization = _utilization_ratio(samples, target.target)
            return ratio, float(utilization)
    else:
        full_value = target.target

        def ratio_of(samples: Sequence[float]) -> tuple[float, float]:
            ratio, average_milli = _plain_metric_ratio(
                [_milli(s) for s in samples], _milli(target.target)
            )
            return ratio, average_milli / 1000

    usage_ratio, current = ratio_of(list(reported.values()))
    rebalance_unready = bool(unready) and usage_ratio > 1.0
    if not rebalance_unready and not missing:
        if tolerances.within(usage_ratio):
            return current_replicas, current
        return math.ceil(usage_ratio * len(reported)), current

    samples = dict(reported)
    # Dampen the change: missing pods count at the target when shrinking, at 0 when growing,
    # and not at all when the reported pods sit exactly on the target.
    if missing and usage_ratio < 1.0:
        samples.update(dict.fromkeys(missing, full_value))
    elif missing and usage_ratio > 1.0:
        samples.update(dict.fromkeys(missing, 0.0))
    if rebalance_unready:
        samples.update(dict.fromkeys(unready, 0.0))
    new_ratio, _ = ratio_of(list(samples.values()))
    if (
        tolerances.within(new_ratio)
        or (usage_ratio < 1.0 < new_ratio)
        or (usage_ratio > 1.0 > new_ratio)
    ):
        return current_replicas, current
    new_replicas = math.ceil(new_ratio * len(samples))
    if (new_ratio < 1.0 and new_replicas > current_replicas) or (
        new_ratio > 1.0 and new_replicas < current_replicas
    ):
        return current_replicas, current
    return new_replicas, current


def replicas_for_external_metric(
    current_replicas: int,
    pods: Sequence[Pod],
    value: float,
    target: MetricTarget,
    tolerances: Tolerances,
) -> tuple[int, float]:
    """External metrics: one number (the sum of the matched series) against the target."""
    usage_milli = _milli(value)
    target_milli = _milli(target.target)
    if target.target_type == AVERAGE_VALUE:
        # Divided by the pods that exist now (the target's status replicas).
        status_replicas = len(pods)
        if status_replicas and tolerances.within(usage_milli / (target_milli * status_replicas)):
            return status_replicas, value / status_replicas
        current = value / status_replicas if status_replicas else value
        return math.ceil(usage_milli / target_milli), current
    if target.target_type == VALUE:
        usage_ratio = usage_milli / target_milli
        if current_replicas == 0:
            return math.ceil(usage_ratio), value
        if tolerances.within(usage_ratio):
            return current_replicas, value
        ready = sum(1 for p in pods if p.ready)
        return math.ceil(usage_ratio * ready), value
    raise ValueError(f"external metric {target.name}: unsupported target type {target.target_type}")


@dataclass(frozen=True)
class MetricProposal:
    metric: MetricTarget
    replicas: int | None
    current_value: float | None
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    """What one sync of the controller concluded."""

    time_s: float
    current_replicas: int
    desired_replicas: int
    metric_replicas: int | None
    proposals: tuple[MetricProposal, ...]
    reason: str

    @property
    def rescale(self) -> bool:
        return self.desired_replicas != self.current_replicas


@dataclass
class _ScaleEvent:
    time_s: float
    change: int


# An observation per metric name: per-pod values (Pods and Resource metrics, a missing pod is
# left out), one number (External), or None when the metrics API could not answer.
Observation = Mapping[str, float] | float | None


@dataclass
class HorizontalPodAutoscaler:
    """One HPA object's controller state: its recommendations and recent scale events."""

    spec: HPASpec
    tolerance: float = DEFAULT_TOLERANCE
    downscale_stabilization_seconds: int = DEFAULT_DOWNSCALE_STABILIZATION_SECONDS
    _recommendations: list[tuple[float, int]] = field(default_factory=list)
    _scale_up_events: list[_ScaleEvent] = field(default_factory=list)
    _scale_down_events: list[_ScaleEvent] = field(default_factory=list)

    def tolerances(self) -> Tolerances:
        behavior = self.spec.behavior
        up = behavior.scale_up.tolerance if behavior else None
        down = behavior.scale_down.tolerance if behavior else None
        return Tolerances(
            scale_up=self.tolerance if up is None else up,
            scale_down=self.tolerance if down is None else down,
        )

    def reconcile(
        self,
        now_s: float,
        current_replicas: int,
        pods: Sequence[Pod],
        observations: Mapping[str, Observation],
    ) -> Decision:
        """One sync period: the replica count the controller would write to the scale target."""
        spec = self.spec
        if not self._recommendations:
            self._recommendations.append((now_s, current_replicas))

        proposals: tuple[MetricProposal, ...] = ()
        metric_replicas: int | None = None
        if current_replicas == 0 and spec.min_replicas != 0:
            return Decision(now_s, 0, 0, None, (), "scaling disabled: the target has 0 replicas")
        if current_replicas > spec.max_replicas:
            desired, reason = spec.max_replicas, "current replicas above maxReplicas"
        elif current_replicas < spec.min_replicas:
            desired, reason = spec.min_replicas, "current replicas below minReplicas"
        else:
            proposals = tuple(
                self._propose(metric, current_replicas, pods, observations.get(metric.name))
                for metric in spec.metrics
            )
            valid = [p.replicas for p in proposals if p.replicas is not None]
            invalid = len(proposals) - len(valid)
            metric_replicas = max(valid, default=0)
            if invalid >= len(proposals) or (invalid and metric_replicas < current_replicas):
                # Without every metric a scale-down would be a guess; keep the current count.
                return Decision(
                    now_s,
                    current_replicas,
                    current_replicas,
                    None,
                    proposals,
                    "metrics unavailable: no scale-down without all metrics",
                )
            if spec.behavior is None:
                desired, reason = self._normalize_without_behavior(
                    now_s, current_replicas, metric_replicas
                )
            else:
                desired, reason = self._normalize_with_behavior(
                    now_s, current_replicas, metric_replicas, spec.behavior
                )
        if desired != current_replicas and spec.behavior is not None:
            self._store_scale_event(now_s, current_replicas, desired)
        return Decision(now_s, current_replicas, desired, metric_replicas, proposals, reason)

    def _propose(
        self,
        metric: MetricTarget,
        current_replicas: int,
        pods: Sequence[Pod],
        observation: Observation,
    ) -> MetricProposal:
        try:
            if observation is None:
                raise MetricUnavailableError(f"{metric.name}: the metrics API returned nothing")
            if metric.source in (PODS_METRIC, RESOURCE_METRIC):
                if not isinstance(observation, Mapping):
                    raise TypeError(f"{metric.name}: per-pod values expected")
                replicas, current = replicas_for_per_pod_metric(
                    current_replicas, pods, observation, metric, self.tolerances()
                )
            elif metric.source == EXTERNAL_METRIC:
                if isinstance(observation, Mapping):
                    raise TypeError(f"{metric.name}: one value expected")
                replicas, current = replicas_for_external_metric(
                    current_replicas, pods, float(observation), metric, self.tolerances()
                )
            else:
                raise ValueError(f"unsupported metric source {metric.source}")
        except MetricUnavailableError as error:
            return MetricProposal(metric, None, None, str(error))
        return MetricProposal(metric, replicas, current)

    def _normalize_with_behavior(
        self, now_s: float, current: int, proposed: int, behavior: Behavior
    ) -> tuple[int, str]:
        stabilized = self._stabilize(now_s, current, proposed, behavior)
        spec = self.spec
        if stabilized > current:
            limit = max(current, self._rate_limit(now_s, current, behavior.scale_up, growing=True))
            highest = min(spec.max_replicas, limit)
            if stabilized > highest:
                why = "scale-up rate limit" if highest < spec.max_replicas else "maxReplicas"
                return highest, why
        elif stabilized < current:
            limit = min(
                current, self._rate_limit(now_s, current, behavior.scale_down, growing=False)
            )
            lowest = max(spec.min_replicas, limit)
            if stabilized < lowest:
                why = "scale-down rate limit" if lowest > spec.min_replicas else "minReplicas"
                return lowest, why
        if stabilized != proposed:
            return stabilized, "stabilisation window"
        return stabilized, "desired within range"

    def _stabilize(self, now_s: float, current: int, proposed: int, behavior: Behavior) -> int:
        up_cutoff = now_s - behavior.scale_up.stabilization_window_seconds
        down_cutoff = now_s - behavior.scale_down.stabilization_window_seconds
        up_recommendation = proposed
        down_recommendation = proposed
        for time_s, replicas in self._recommendations:
            if time_s > up_cutoff:
                up_recommendation = min(up_recommendation, replicas)
            if time_s > down_cutoff:
                down_recommendation = max(down_recommendation, replicas)
        stabilized = min(max(current, up_recommendation), down_recommendation)
        oldest = min(up_cutoff, down_cutoff)
        self._recommendations = [r for r in self._recommendations if r[0] > oldest]
        self._recommendations.append((now_s, proposed))
        return stabilized

    def _period_change(self, now_s: float, period_seconds: int) -> tuple[int, int]:
        cutoff = now_s - period_seconds
        added = sum(e.change for e in self._scale_up_events if e.time_s > cutoff)
        removed = sum(e.change for e in self._scale_down_events if e.time_s > cutoff)
        return added, removed

    def _rate_limit(self, now_s: float, current: int, rules: ScalingRules, growing: bool) -> int:
        """The furthest the policies let the count move from `current` in this direction."""
        if rules.select_policy == SELECT_DISABLED:
            return current
        limits = []
        for policy in rules.policies:
            added, removed = self._period_change(now_s, policy.period_seconds)
            period_start = current - added + removed
            if policy.type == PODS_POLICY:
                limits.append(period_start + (policy.value if growing else -policy.value))
            elif growing:
                # Rounded up, or a small target could never grow by a percentage.
                limits.append(math.ceil(period_start * (1 + policy.value / 100)))
            else:
                limits.append(int(period_start * (1 - policy.value / 100)))
        most_change, least_change = (max, min) if growing else (min, max)
        return (least_change if rules.select_policy == SELECT_MIN else most_change)(limits)

    def _store_scale_event(self, now_s: float, previous: int, new: int) -> None:
        behavior = self.spec.behavior
        assert behavior is not None
        if new > previous:
            events, rules, change = self._scale_up_events, behavior.scale_up, new - previous
        else:
            events, rules, change = self._scale_down_events, behavior.scale_down, previous - new
        longest = max((p.period_seconds for p in rules.policies), default=0)
        events[:] = [e for e in events if e.time_s > now_s - longest]
        events.append(_ScaleEvent(now_s, change))

    def _normalize_without_behavior(
        self, now_s: float, current: int, proposed: int
    ) -> tuple[int, str]:
        # Without `behavior` the controller keeps its older rules: the highest recommendation of
        # the downscale window, and growth capped at max(2 x current, 4) per sync.
        cutoff = now_s - self.downscale_stabilization_seconds
        stabilized = max(
            [proposed, *(r for t, r in self._recommendations if t > cutoff)],
        )
        self._recommendations = [r for r in self._recommendations if r[0] > cutoff]
        self._recommendations.append((now_s, proposed))
        scale_up_limit = max(2 * current, 4)
        highest = min(self.spec.max_replicas, scale_up_limit)
        if stabilized < self.spec.min_replicas:
            return self.spec.min_replicas, "minReplicas"
        if stabilized > highest:
            return highest, "scale-up rate limit" if highest < self.spec.max_replicas else (
                "maxReplicas"
            )
        return stabilized, "desired within range"
