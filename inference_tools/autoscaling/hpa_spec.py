"""A HorizontalPodAutoscaler's spec as the rendered manifests declare it: metrics, targets,
replica bounds and scaling behaviour, with the API server's defaults for what a manifest leaves out.

The tooling reads the deployed configuration with it (`rendered_settings`); the lab's model of the
controller's algorithm (`lab/autoscaling/hpa.py`) takes these objects as its input.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_TOLERANCE = 0.1
DEFAULT_DOWNSCALE_STABILIZATION_SECONDS = 300

PODS_POLICY = "Pods"
PERCENT_POLICY = "Percent"
SELECT_MAX = "Max"
SELECT_MIN = "Min"
SELECT_DISABLED = "Disabled"

PODS_METRIC = "Pods"
RESOURCE_METRIC = "Resource"
EXTERNAL_METRIC = "External"
AVERAGE_VALUE = "AverageValue"
VALUE = "Value"
UTILIZATION = "Utilization"


def quantity_value(quantity: str | int | float) -> float:
    """A quantity from a manifest ("250m", "20k", "1.5Gi", or a YAML number) as a float.

    Kubernetes' own parser reads it (exact, as a Decimal); the algorithm works in floats.
    """
    # Imported here: the kubernetes package takes a fifth of a second, which `--help` need not pay.
    from kubernetes.utils import parse_quantity

    value = parse_quantity(quantity)  # ValueError on text that is not a quantity
    # The parser takes any Python number: a YAML `true` or `.nan` is not a quantity.
    if isinstance(quantity, bool) or not value.is_finite():
        raise ValueError(f"not a quantity: {quantity!r}")
    return float(value)


@dataclass(frozen=True)
class ScalingPolicy:
    type: str
    value: int
    period_seconds: int


@dataclass(frozen=True)
class ScalingRules:
    stabilization_window_seconds: int
    policies: tuple[ScalingPolicy, ...]
    select_policy: str = SELECT_MAX
    tolerance: float | None = None


# The API server's defaults for a behavior block that leaves parts out.
DEFAULT_SCALE_UP_POLICIES = (
    ScalingPolicy(PODS_POLICY, 4, 15),
    ScalingPolicy(PERCENT_POLICY, 100, 15),
)
DEFAULT_SCALE_DOWN_POLICIES = (ScalingPolicy(PERCENT_POLICY, 100, 15),)


@dataclass(frozen=True)
class Behavior:
    scale_up: ScalingRules
    scale_down: ScalingRules

    @classmethod
    def default(
        cls, downscale_stabilization_seconds: int = DEFAULT_DOWNSCALE_STABILIZATION_SECONDS
    ) -> Behavior:
        return cls.from_manifest({}, downscale_stabilization_seconds)

    @classmethod
    def from_manifest(
        cls,
        behavior: Mapping[str, Any],
        downscale_stabilization_seconds: int = DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
    ) -> Behavior:
        return cls(
            scale_up=_rules_from_manifest(behavior.get("scaleUp"), 0, DEFAULT_SCALE_UP_POLICIES),
            scale_down=_rules_from_manifest(
                behavior.get("scaleDown"),
                downscale_stabilization_seconds,
                DEFAULT_SCALE_DOWN_POLICIES,
            ),
        )


def _rules_from_manifest(
    rules: Mapping[str, Any] | None,
    default_window_seconds: int,
    default_policies: tuple[ScalingPolicy, ...],
) -> ScalingRules:
    rules = rules or {}
    raw_policies = rules.get("policies")
    policies = (
        tuple(
            ScalingPolicy(p["type"], int(p["value"]), int(p["periodSeconds"])) for p in raw_policies
        )
        if raw_policies
        else default_policies
    )
    tolerance = rules.get("tolerance")
    return ScalingRules(
        stabilization_window_seconds=int(
            rules.get("stabilizationWindowSeconds", default_window_seconds)
        ),
        policies=policies,
        select_policy=rules.get("selectPolicy", SELECT_MAX),
        tolerance=None if tolerance is None else quantity_value(tolerance),
    )


@dataclass(frozen=True)
class MetricTarget:
    """One entry of `spec.metrics`: where the metric comes from, its name, and its target."""

    source: str
    name: str
    target_type: str
    target: float


@dataclass(frozen=True)
class HPASpec:
    min_replicas: int
    max_replicas: int
    metrics: tuple[MetricTarget, ...]
    behavior: Behavior | None

    @classmethod
    def from_manifest(
        cls,
        manifest: Mapping[str, Any],
        downscale_stabilization_seconds: int = DEFAULT_DOWNSCALE_STABILIZATION_SECONDS,
    ) -> HPASpec:
        """Read an `autoscaling/v2` HorizontalPodAutoscaler object (a parsed YAML document)."""
        if manifest.get("apiVersion") != "autoscaling/v2":
            raise ValueError(f"expected autoscaling/v2, got {manifest.get('apiVersion')!r}")
        spec = manifest["spec"]
        behavior = spec.get("behavior")
        return cls(
            min_replicas=int(spec.get("minReplicas", 1)),
            max_replicas=int(spec["maxReplicas"]),
            metrics=tuple(_metric_from_manifest(m) for m in spec.get("metrics", ())),
            behavior=None
            if behavior is None
            else Behavior.from_manifest(behavior, downscale_stabilization_seconds),
        )


def _metric_from_manifest(metric: Mapping[str, Any]) -> MetricTarget:
    source = metric["type"]
    body = metric[source[0].lower() + source[1:]]
    name = body["name"] if source == RESOURCE_METRIC else body["metric"]["name"]
    target = body["target"]
    target_type = target["type"]
    field_name = {
        AVERAGE_VALUE: "averageValue",
        VALUE: "value",
        UTILIZATION: "averageUtilization",
    }[target_type]
    return MetricTarget(source, name, target_type, quantity_value(target[field_name]))
