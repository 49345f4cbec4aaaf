"""The autoscaling configuration as it is deployed: read from `kubectl kustomize` output.

Everything the calibration and the simulation use (recording rules, the
adapter's metrics queries, the HPA, KEDA's triggers) comes from here, so that what is tested is
the rendered text and not a copy of it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inference_tools.autoscaling.hpa_spec import (
    EXTERNAL_METRIC,
    Behavior,
    HPASpec,
    MetricTarget,
    quantity_value,
)
from inference_tools.manifests import render as rendering
from inference_tools.manifests.render import Render
from inference_tools.manifests.validation import rule_groups

Manifest = dict[str, Any]


ADAPTER_CONFIG_MAP = "triton-prometheus-adapter-rules"


class ManifestError(RuntimeError):
    pass


def render(kustomization_dir: Path) -> Render:
    """`kubectl kustomize DIR`, parsed (the same rendering the manifest validation uses)."""
    return rendering.render(kustomization_dir)


def prometheus_rule_file(rendered: Render) -> dict[str, Any]:
    """All PrometheusRule groups as one Prometheus rule file (`groups:`)."""
    groups = rule_groups(rendered)
    if not groups:
        raise ManifestError("no PrometheusRule in the rendered output")
    return {"groups": groups}


# A subquery's step, `[30s:15s]` -> `:15s]`: it is the scrape interval the rules were written for.
_SUBQUERY_STEP = re.compile(r":(\d+[smh])\]")


def with_evaluation_interval(rule_file: dict[str, Any], interval: str) -> dict[str, Any]:
    """The rule groups evaluated every `interval`, their subqueries stepping at it too: what a
    local Prometheus with faster clocks (scraping every `interval`) needs to read the same
    signals as the cluster's."""
    return {
        "groups": [
            {
                **group,
                "interval": interval,
                "rules": [
                    {**rule, "expr": _SUBQUERY_STEP.sub(f":{interval}]", str(rule["expr"]))}
                    for rule in group["rules"]
                ],
            }
            for group in rule_file["groups"]
        ]
    }


def recording_rules(rendered: Render) -> dict[str, str]:
    """Recorded series name -> expression."""
    return {
        rule["record"]: rule["expr"]
        for group in prometheus_rule_file(rendered)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


_CAP = re.compile(r"clamp_max\(\s*([\w:]+)\s*,\s*scalar\(\s*([\d.]+)\s*\*\s*([\w:]+)\s*\)\s*\)")
_CONSTANT = re.compile(r"^\s*vector\(\s*([\d.]+)\s*\)\s*$")


@dataclass(frozen=True)
class SignalCap:
    """A recording rule's `clamp_max(SERIES, scalar(FACTOR * OBJECTIVE))`, OBJECTIVE a recorded
    `vector(N)`: the signal never reads more than FACTOR times its value at the objective."""

    factor: float
    objective: float

    @property
    def value(self) -> float:
        return self.factor * self.objective


def signal_caps(rendered: Render) -> dict[str, SignalCap]:
    """Capped recorded series -> its cap, read from the rendered recording rules."""
    recorded = recording_rules(rendered)
    caps = {}
    for name, expression in recorded.items():
        match = _CAP.search(expression)
        if match is None:
            continue
        _, factor, constant = match.groups()
        value = _CONSTANT.match(recorded.get(constant, ""))
        if value is None:
            raise ManifestError(f"{name}: {constant} is not a recorded vector(N) constant")
        caps[name] = SignalCap(float(factor), float(value.group(1)))
    return caps


def adapter_metric_caps(rendered: Render) -> dict[str, SignalCap]:
    """The caps of `signal_caps` under the metric names the HPA reads (via the adapter)."""
    caps = signal_caps(rendered)
    return {r.metric_name: caps[r.series] for r in adapter_rules(rendered) if r.series in caps}


# A range selector, `[45s]`, `[1m]`, or a subquery's range and step, `[30s:15s]`: the number,
# the unit and (for a subquery) the step.
RANGE_SELECTOR = re.compile(r"\[(\d+)([smh])(:\d+[smh])?\]")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}
_SERIES_NAME = re.compile(r"[A-Za-z_:][\w:]*")


def _windows_s(recorded: Mapping[str, str], series: str) -> set[float]:
    """The ranges a recorded series is computed over: those in its expression, and those of the
    recorded series it reads (a cap reads the series it caps, and a constant with none)."""
    expression = recorded[series]
    windows = {float(n) * _UNIT_SECONDS[u] for n, u, _ in RANGE_SELECTOR.findall(expression)}
    for name in set(_SERIES_NAME.findall(expression)) & set(recorded) - {series}:
        windows |= _windows_s(recorded, name)
    return windows


def adapter_metric_windows(rendered: Render) -> dict[str, float]:
    """Seconds of the range each metric the HPA reads (via the adapter) is computed over, read
    from the rendered recording rules; a series computed over several ranges is refused."""
    recorded = recording_rules(rendered)
    windows = {}
    for rule in adapter_rules(rendered):
        found = _windows_s(recorded, rule.series)
        if len(found) != 1:
            raise ManifestError(f"{rule.series}: not one range but {sorted(found) or 'none'}")
        windows[rule.metric_name] = found.pop()
    return windows


@dataclass(frozen=True)
class AdapterRule:
    """One prometheus-adapter discovery rule, reduced to what the loop needs."""

    series: str
    metric_name: str
    metrics_query: str


def adapter_rules(rendered: Render) -> list[AdapterRule]:
    """The adapter configuration shipped by autoscaling-hpa, with each rule's API name."""
    return [_adapter_rule(rule) for rule in adapter_config(rendered)["rules"]]


def _adapter_rule(rule: Mapping[str, Any]) -> AdapterRule:
    series_match = re.search(r'__name__="([^"]+)"', rule["seriesQuery"])
    if series_match is None:
        raise ManifestError(f"seriesQuery names no single series: {rule['seriesQuery']}")
    series = series_match.group(1)
    name = rule.get("name", {})
    pattern = name.get("matches", ".*")
    match = re.search(pattern, series)
    if match is None:
        raise ManifestError(f"name.matches {pattern!r} does not match {series!r}")
    default_as = "$1" if match.groups() else "$0"
    template = name.get("as") or default_as
    # The adapter expands `as` like Go's regexp.Expand: $1 and ${1}.
    metric_name = re.sub(r"\$\{?(\d+)\}?", lambda m: match.group(int(m.group(1))) or "", template)
    return AdapterRule(series, metric_name, rule["metricsQuery"])


def fill_adapter_query(rule: AdapterRule, namespace: str, pods: Sequence[str]) -> str:
    """The query prometheus-adapter sends for `pods/<metric>` on these pods of a namespace.

    As its metrics-query builder does: LabelMatchers is the namespace matcher then the pod
    matcher (`=` for one pod, `=~` with the names joined by `|` for several), GroupBy is `pod`.
    """
    if not pods:
        raise ValueError("the adapter is only asked about existing pods")
    pod_matcher = f'pod="{pods[0]}"' if len(pods) == 1 else f'pod=~"{"|".join(pods)}"'
    return (
        rule.metrics_query.replace("<<.Series>>", rule.series)
        .replace("<<.LabelMatchers>>", f'namespace="{namespace}",{pod_matcher}')
        .replace("<<.GroupBy>>", "pod")
    )


def adapter_config(rendered: Render) -> dict[str, Any]:
    """The adapter configuration that autoscaling-hpa ships in a ConfigMap."""
    config_map = rendered.one("ConfigMap", ADAPTER_CONFIG_MAP)
    return yaml.safe_load(config_map["data"]["config.yaml"])


def adapter_values(rendered: Render) -> dict[str, Any]:
    """Helm values for the prometheus-community/prometheus-adapter chart: our rules as custom."""
    return {"rules": {"custom": adapter_config(rendered)["rules"]}}


def hpa_spec(rendered: Render, **kwargs: Any) -> HPASpec:
    return HPASpec.from_manifest(rendered.one("HorizontalPodAutoscaler"), **kwargs)


@dataclass(frozen=True)
class KedaTrigger:
    name: str
    metric_type: str
    query: str
    threshold: float


def keda_triggers(scaled_object: Manifest) -> list[KedaTrigger]:
    triggers = []
    for index, trigger in enumerate(scaled_object["spec"]["triggers"]):
        if trigger["type"] != "prometheus":
            raise ManifestError(f"unexpected trigger type {trigger['type']}")
        metadata = trigger["metadata"]
        triggers.append(
            KedaTrigger(
                name=trigger.get("name", f"s{index}-prometheus"),
                metric_type=trigger.get("metricType", "AverageValue"),
                query=metadata["query"],
                threshold=quantity_value(metadata["threshold"]),
            )
        )
    return triggers


def keda_hpa_spec(scaled_object: Manifest) -> HPASpec:
    """The HPA that KEDA creates for a ScaledObject: one External metric per trigger."""
    spec = scaled_object["spec"]
    behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior")
    return HPASpec(
        min_replicas=int(spec.get("minReplicaCount", 0)),
        max_replicas=int(spec.get("maxReplicaCount", 100)),
        metrics=tuple(
            MetricTarget(EXTERNAL_METRIC, t.name, t.metric_type, t.threshold)
            for t in keda_triggers(scaled_object)
        ),
        behavior=None if behavior is None else Behavior.from_manifest(behavior),
    )


class _BlockStrings(yaml.SafeDumper):
    """Kubernetes-style YAML: lists indented under their key, multi-line strings (embedded
    patches, rule expressions) as readable `|` blocks."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


_BlockStrings.add_representer(
    str,
    lambda dumper, text: dumper.represent_scalar(
        "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None
    ),
)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_BlockStrings, sort_keys=False, width=100)
