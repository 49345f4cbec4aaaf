"""`inference-tools release-overlay` writes a team's release of a shipped overlay; whatever the
base, the release's autoscaler scales and reads the release's own Deployment and series, and
`validate-manifests --release` refuses an overlay whose KEDA queries read another's."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from inference_tools.cli import main
from inference_tools.manifests import release_overlay, validation
from inference_tools.manifests.render import Render, render

from tests.checkout import KUSTOMIZE_DIR

pytestmark = pytest.mark.kubernetes


def write_release(out: Path, release: str, base: str, *extra: str) -> Render:
    argv = [
        "release-overlay",
        "--release",
        release,
        "--namespace",
        "ml-serving",
        "--base",
        str(KUSTOMIZE_DIR / "overlays" / base),
        "--out",
        str(out),
        *extra,
    ]
    assert main(argv) == 0
    return render(out, release)


@pytest.mark.parametrize("base", ["cpu-keda", "cpu-hpa"])
def test_the_release_scales_and_reads_its_own_deployment_and_series(
    tmp_path: Path, base: str
) -> None:
    rendered = write_release(
        tmp_path / "team-c",
        "team-c",
        base,
        "--image",
        "registry.example.com/team-c/models@sha256:" + "ab" * 32,
        "--model-repository",
        "/team-c/models",
    )
    deployment = rendered.one("Deployment", "team-c-triton")
    assert {r["metadata"]["namespace"] for r in rendered.resources} == {"ml-serving"}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/instance"] == "team-c"
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "registry.example.com/team-c/models@sha256:" + "ab" * 32
    autoscalers = rendered.of_kind("ScaledObject") + rendered.of_kind("HorizontalPodAutoscaler")
    assert [a["spec"]["scaleTargetRef"]["name"] for a in autoscalers] == ["team-c-triton"]
    assert release_overlay.autoscaler_problems(rendered) == []
    for scaled_object in rendered.of_kind("ScaledObject"):
        queries = [t["metadata"]["query"] for t in scaled_object["spec"]["triggers"]]
        assert queries and all(
            'namespace="ml-serving",service="team-c-triton"' in q for q in queries
        ), queries
    assert validation.validate_custom_in([rendered]) == []
    assert validation.validate_core(rendered) == []


@pytest.mark.parametrize("base", ["cpu-keda", "cpu"])
def test_a_second_release_in_the_namespace_leaves_out_the_rules(tmp_path: Path, base: str) -> None:
    """Where the base has recording rules, the second release deletes its copy; where it has
    none (`cpu`), there is nothing to leave out and the overlay still renders."""
    rendered = write_release(tmp_path / "team-d", "team-d", base, "--shares-namespace")
    assert not rendered.of_kind("PrometheusRule")
    assert rendered.one("Deployment")["metadata"]["name"] == "team-d-triton"


def test_an_overlay_without_the_replacements_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a team writes by hand from the kustomize docs alone: KEDA would read `triton` in
    `inference`, another release's series (or none), and nothing else would say so."""
    overlay = tmp_path / "by-hand"
    overlay.mkdir()
    base = os.path.relpath(KUSTOMIZE_DIR / "overlays" / "cpu-keda", overlay)
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump({"namespace": "ml-serving", "namePrefix": "team-e-", "resources": [base]})
    )
    problems = release_overlay.autoscaler_problems(render(overlay))
    assert len(problems) == 3
    assert all("service='triton'" in p and "['team-e-triton']" in p for p in problems)
    assert main(["validate-manifests", "--release", str(overlay)]) == 1
    assert "FAIL autoscaler reads its own release" in capsys.readouterr().out


def test_the_written_replacements_are_the_components_own() -> None:
    component = KUSTOMIZE_DIR / "components" / "autoscaling-keda" / "kustomization.yaml"
    assert yaml.safe_load(component.read_text())["replacements"] == (
        release_overlay.query_replacements()
    )
