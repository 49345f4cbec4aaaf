"""Two teams' overlays that use this repository as their base, in one namespace: rendered and
validated like ours, and every selector of one release misses the other's pods."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inference_tools.manifests import render as rendering
from inference_tools.manifests import validation
from inference_tools.manifests.render import Render

from tests.checkout import KUSTOMIZE_DIR

pytestmark = pytest.mark.kubernetes
CONSUMERS = Path(__file__).parent / "consumer"


@pytest.fixture(scope="module")
def releases() -> dict[str, Render]:
    return {name: rendering.render(CONSUMERS / name, name) for name in ("team-a", "team-b")}


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def _pod_labels(render: Render) -> dict[str, str]:
    return render.one("Deployment")["spec"]["template"]["metadata"]["labels"]


def _selectors(render: Render) -> list[tuple[str, dict[str, str]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for resource in render.resources:
        kind, spec = resource["kind"], resource.get("spec", {})
        if kind == "Service":
            found.append((f"Service/{resource['metadata']['name']}", spec["selector"]))
        elif kind in ("Deployment", "PodDisruptionBudget"):
            found.append((kind, spec["selector"]["matchLabels"]))
        elif kind == "NetworkPolicy":
            found.append(
                (
                    f"NetworkPolicy/{resource['metadata']['name']}",
                    spec["podSelector"]["matchLabels"],
                )
            )
    return found


def test_each_release_selects_its_own_pods_only(releases: dict[str, Render]) -> None:
    for name, render in releases.items():
        other = releases["team-b" if name == "team-a" else "team-a"]
        selectors = _selectors(render)
        assert len(selectors) >= 4, selectors
        for what, selector in selectors:
            assert selector.get("app.kubernetes.io/instance") == name, (name, what)
            assert _matches(selector, _pod_labels(render)), (name, what)
            assert not _matches(selector, _pod_labels(other)), (name, what)


def test_each_servicemonitor_scrapes_its_own_service_only(releases: dict[str, Render]) -> None:
    monitor = releases["team-a"].one("ServiceMonitor")["spec"]["selector"]["matchLabels"]
    assert _matches(monitor, releases["team-a"].one("Service")["metadata"]["labels"])
    assert not _matches(monitor, releases["team-b"].one("Service")["metadata"]["labels"])
    assert (
        "app.kubernetes.io/instance"
        in releases["team-a"].one("ServiceMonitor")["spec"]["targetLabels"]
    )


def test_names_are_apart_and_the_namespace_is_not_created(releases: dict[str, Render]) -> None:
    keys = {
        name: {(r["kind"], r["metadata"]["name"]) for r in render.resources}
        for name, render in releases.items()
    }
    assert not keys["team-a"] & keys["team-b"]
    for render in releases.values():
        assert not render.of_kind("Namespace")
        assert {r["metadata"].get("namespace") for r in render.resources} == {"ml-serving"}
        hpa = render.one("HorizontalPodAutoscaler")
        assert hpa["spec"]["scaleTargetRef"]["name"] == render.one("Deployment")["metadata"]["name"]


def test_own_image_pinned_by_digest_and_own_model_repository(releases: dict[str, Render]) -> None:
    render = releases["team-a"]
    container = render.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("registry.example.com/team-a/triton-models@sha256:")
    config = render.one(
        "ConfigMap",
        next(
            c["metadata"]["name"]
            for c in render.of_kind("ConfigMap")
            if c["metadata"]["name"].startswith("team-a-triton-server-")
        ),
    )
    assert config["data"]["MODEL_REPOSITORY"] == "/team-a/models"
    # One PrometheusRule per Prometheus: team-b leaves its copy out.
    assert render.of_kind("PrometheusRule") and not releases["team-b"].of_kind("PrometheusRule")


def test_consumer_overlays_validate_like_ours(releases: dict[str, Render], tmp_path: Path) -> None:
    renders = list(releases.values())
    for render in renders:
        assert validation.validate_core(render) == [], render.name
    assert validation.validate_custom_in(renders) == []
    findings = validation.run_checkov(renders, tmp_path)
    assert [f for f in findings if f.result == "failed"] == []


def test_every_selector_of_every_render_names_the_release(tmp_path: Path) -> None:
    for render in rendering.render_all(tmp_path, KUSTOMIZE_DIR):
        pods = _pod_labels(render)
        assert pods.get("app.kubernetes.io/instance") == "triton", render.name
        for what, selector in _selectors(render):
            assert selector.get("app.kubernetes.io/instance") == "triton", (render.name, what)
        for monitor in render.of_kind("ServiceMonitor"):
            labels = monitor["spec"]["selector"]["matchLabels"]
            assert labels.get("app.kubernetes.io/instance") == "triton", render.name


def test_the_namespace_kustomization_validates() -> None:
    namespace = rendering.render(KUSTOMIZE_DIR / "namespace", "namespace")
    assert [r["kind"] for r in namespace.resources] == ["Namespace"]
    assert validation.validate_core(namespace) == []
