"""The autoscaling configuration as it is deployed: read from `kubectl kustomize` output.

Everything the local loop, the calibration and the simulation use (recording rules, the
adapter's metrics queries, the HPA, KEDA's triggers) comes from here, so that what is tested is
the rendered text and not a copy of it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inference_tools.autoscaling.hpa import (
    EXTERNAL_METRIC,
    Behavior,
    HPASpec,
    MetricTarget,
)
from inference_tools.autoscaling.quantity import parse_quantity

Manifest = dict[str, Any]


class ManifestError(RuntimeError):
    pass


def render(kustomization_dir: Path) -> list[Manifest]:
    """`kubectl kustomize DIR` (kustomize v5 built into kubectl), parsed."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        raise ManifestError("kubectl is not on PATH; it renders the kustomize overlays")
    result = subprocess.run(
        [kubectl, "kustomize", str(kustomization_dir)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ManifestError(f"kubectl kustomize {kustomization_dir} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def select(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        m
        for m in manifests
        if m.get("kind") == kind and (name is None or m["metadata"]["name"] == name)
    ]


def only(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = select(manifests, kind, name)
    if len(found) != 1:
        raise ManifestError(f"expected one {kind} {name or ''}, found {len(found)}")
    return found[0]


def prometheus_rule_file(manifests: Iterable[Manifest]) -> dict[str, Any]:
    """All PrometheusRule groups as one Prometheus rule file (`groups:`)."""
    groups = [g for rule in select(manifests, "PrometheusRule") for g in rule["spec"]["groups"]]
    if not groups:
        raise ManifestError("no PrometheusRule in the rendered output")
    return {"groups": groups}


def recording_rules(manifests: Iterable[Manifest]) -> dict[str, str]:
    """Recorded series name -> expression."""
    return {
        rule["record"]: rule["expr"]
        for group in prometheus_rule_file(manifests)["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


@dataclass(frozen=True)
class AdapterRule:
    """One prometheus-adapter discovery rule, reduced to what the loop needs."""

    series: str
    metric_name: str
    metrics_query: str


def adapter_rules(manifests: Iterable[Manifest]) -> list[AdapterRule]:
    """The adapter configuration shipped by autoscaling-hpa, with each rule's API name."""
    config_map = only(manifests, "ConfigMap", "triton-prometheus-adapter-rules")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    return [_adapter_rule(rule) for rule in config["rules"]]


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


def adapter_values(manifests: Iterable[Manifest]) -> dict[str, Any]:
    """Helm values for the prometheus-community/prometheus-adapter chart: our rules as custom."""
    config_map = only(manifests, "ConfigMap", "triton-prometheus-adapter-rules")
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    return {"rules": {"custom": config["rules"]}}


def hpa_spec(manifests: Iterable[Manifest], **kwargs: Any) -> HPASpec:
    return HPASpec.from_manifest(only(manifests, "HorizontalPodAutoscaler"), **kwargs)


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
                threshold=parse_quantity(metadata["threshold"]),
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


def with_namespace(manifests: Iterable[Manifest], kind: str, name: str) -> str:
    return only(manifests, kind, name)["metadata"].get("namespace", "default")


def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, width=100)
