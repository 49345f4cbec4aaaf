"""Every overlay renders, and what it renders is valid for the API server, offline."""

from __future__ import annotations

import copy

import pytest
from inference_tools.manifests import validation
from inference_tools.manifests.render import Render, kustomizations

from tests.checkout import KUSTOMIZE_DIR

pytestmark = pytest.mark.kubernetes


def test_every_overlay_and_component_renders(all_renders: list[Render]) -> None:
    overlay_dirs = kustomizations(KUSTOMIZE_DIR / "overlays")
    component_dirs = kustomizations(KUSTOMIZE_DIR / "components")
    names = {r.name for r in all_renders}
    assert {d.name for d in overlay_dirs} <= names
    assert {f"component:{d.name}" for d in component_dirs} <= names
    for render in all_renders:
        assert render.of_kind("Deployment"), f"{render.name} renders no Deployment"


def test_the_production_and_local_overlays_exist(renders_by_name: dict[str, Render]) -> None:
    assert {"gpu", "cpu"} <= set(renders_by_name)


def test_every_component_has_a_readme() -> None:
    for component in kustomizations(KUSTOMIZE_DIR / "components"):
        readme = component / "README.md"
        assert readme.is_file(), f"{component.name} has no README.md"
        assert "Turn it on" in readme.read_text(), f"{readme}: say how to turn it on"


def test_core_resources_pass_strict_schemas_of_two_minor_versions(
    all_renders: list[Render],
) -> None:
    assert len(validation.KUBERNETES_VERSIONS) >= 2
    problems = [p for render in all_renders for p in validation.validate_core(render)]
    assert problems == []


def test_strict_schema_validation_catches_an_unknown_field(overlays: list[Render]) -> None:
    # Guards the check above against passing vacuously.
    broken = copy.deepcopy(overlays[0])
    deployment = broken.one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {}}
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    problems = validation.validate_core(broken)
    assert any("livenesProbe" in p for p in problems), problems


def test_custom_resources_match_their_upstream_crds(all_renders: list[Render]) -> None:
    kinds = {r["kind"] for _, r in validation.custom_resources(all_renders)}
    assert {"ServiceMonitor", "PrometheusRule", "HTTPRoute", "GRPCRoute"} <= kinds
    assert validation.validate_custom_in(all_renders) == []


def test_crd_validation_catches_wrong_enums_and_unknown_fields(
    renders_by_name: dict[str, Render],
) -> None:
    gpu = renders_by_name["gpu"]
    route = copy.deepcopy(gpu.one("HTTPRoute"))
    route["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"  # Gateway API: PathPrefix
    monitor = copy.deepcopy(gpu.one("ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["scrapeInterval"] = "15s"  # the field is `interval`
    results = validation.validate_custom([route, monitor])
    route_errors, monitor_errors = (r["errors"] for r in results)
    assert any("allowed values" in e for e in route_errors), route_errors
    assert any("scrapeInterval" in e for e in monitor_errors), monitor_errors
