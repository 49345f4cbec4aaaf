"""The rendered autoscaling overlays: the HPA, the adapter rules and KEDA agree with each other
and with the recording rules, and no autoscaled Deployment carries a replica count."""

from __future__ import annotations

import re

import pytest
import yaml
from inference_tools.autoscaling import rendered_settings
from inference_tools.manifests.render import Render

from tests.checkout import KUSTOMIZE_DIR

OVERLAYS = sorted(p.parent for p in (KUSTOMIZE_DIR / "overlays").glob("*/kustomization.yaml"))


@pytest.fixture(scope="module", params=OVERLAYS, ids=lambda p: p.name)
def rendered(request: pytest.FixtureRequest) -> Render:
    return rendered_settings.render(request.param)


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler(rendered: Render) -> None:
    autoscalers = rendered.of_kind("HorizontalPodAutoscaler") + rendered.of_kind("ScaledObject")
    for deployment in rendered.of_kind("Deployment"):
        if autoscalers:
            assert "replicas" not in deployment["spec"]


def test_hpa_metrics_are_served_by_the_adapter_from_recorded_series(rendered: Render) -> None:
    if not rendered.of_kind("HorizontalPodAutoscaler"):
        pytest.skip("no HorizontalPodAutoscaler in this overlay")
    rules = {rule.metric_name: rule for rule in rendered_settings.adapter_rules(rendered)}
    recorded = rendered_settings.recording_rules(rendered)
    spec = rendered_settings.hpa_spec(rendered)
    assert {m.name for m in spec.metrics} == set(rules)
    for rule in rules.values():
        assert rule.series in recorded
        # Nothing in the adapter's configuration names a namespace: it comes from the HPA.
        assert "namespace=" not in rule.metrics_query


def test_scaled_object_queries_select_its_own_namespace_and_service(rendered: Render) -> None:
    for scaled_object in rendered.of_kind("ScaledObject"):
        namespace = scaled_object["metadata"]["namespace"]
        service = rendered.one("Service", "triton")["metadata"]
        recorded = rendered_settings.recording_rules(rendered)
        for trigger in rendered_settings.keda_triggers(scaled_object):
            matchers = dict(re.findall(r'(\w+)="([^"]*)"', trigger.query))
            assert matchers == {"namespace": namespace, "service": service["name"]}
            assert service["namespace"] == namespace
            assert re.search(r"\(([\w:]+)\{", trigger.query).group(1) in recorded


def component_manifests(name: str) -> Render:
    overlay = KUSTOMIZE_DIR / "overlays" / f"cpu-{name}"
    return rendered_settings.render(overlay)


def test_keda_and_hpa_components_carry_the_same_policy() -> None:
    hpa = rendered_settings.hpa_spec(component_manifests("hpa"))
    keda = rendered_settings.keda_hpa_spec(
        component_manifests("keda").one("ScaledObject", "triton")
    )
    assert (keda.min_replicas, keda.max_replicas) == (hpa.min_replicas, hpa.max_replicas)
    assert keda.behavior == hpa.behavior
    assert [m.target for m in keda.metrics] == [m.target for m in hpa.metrics]


def test_adapter_query_is_filled_as_the_adapter_fills_it() -> None:
    rules = {r.metric_name: r for r in rendered_settings.adapter_rules(component_manifests("hpa"))}
    queue = rules["triton_queue_time_per_request_us"]
    one = rendered_settings.fill_adapter_query(queue, "inference", ["triton-a"])
    several = rendered_settings.fill_adapter_query(queue, "inference", ["triton-a", "triton-b"])
    assert one == (
        "max by (pod) (namespace_service_pod:triton_queue_time_per_request_us:rate1m"
        '{namespace="inference",pod="triton-a"})'
    )
    assert 'pod=~"triton-a|triton-b"' in several


def test_helm_values_carry_the_rendered_rules(capsys: pytest.CaptureFixture[str]) -> None:
    from inference_tools.cli import main

    overlay = KUSTOMIZE_DIR / "overlays" / "gpu-hpa"
    assert main(["autoscaling", "adapter-values", str(overlay)]) == 0
    values = yaml.safe_load(capsys.readouterr().out)
    assert values == {
        "rules": {
            "custom": rendered_settings.adapter_config(rendered_settings.render(overlay))["rules"]
        }
    }
