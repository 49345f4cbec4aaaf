"""The overlay tables of README.md and docs/kubernetes.md say what each rendered overlay needs."""

from __future__ import annotations

from pathlib import Path

import pytest
from inference_tools.manifests.render import Render

from tests.checkout import CHECKOUT
from tests.kubernetes import overlay_needs
from tests.kubernetes.overlay_needs import Need

pytestmark = pytest.mark.kubernetes
DOCUMENTS = (CHECKOUT / "README.md", CHECKOUT / "docs" / "kubernetes.md")


@pytest.fixture(scope="module")
def derived(overlays: list[Render]) -> dict[str, set[Need]]:
    return {render.name: overlay_needs.derive(render) for render in overlays}


def test_needs_follow_from_what_each_overlay_renders(derived: dict[str, set[Need]]) -> None:
    assert derived["cpu"] == {Need.LOCAL_IMAGE}
    # Their signals are recording rules: no autoscaled overlay runs without the Operator.
    assert derived["cpu-hpa"] == {
        Need.LOCAL_IMAGE,
        Need.PROMETHEUS_OPERATOR,
        Need.PROMETHEUS_ADAPTER,
    }
    assert derived["cpu-keda"] == {Need.LOCAL_IMAGE, Need.PROMETHEUS_OPERATOR, Need.KEDA}
    assert derived["gpu"] == {Need.GPU, Need.PROMETHEUS_OPERATOR, Need.GATEWAY_API}
    assert derived["gpu-ingress"] == {Need.GPU, Need.PROMETHEUS_OPERATOR, Need.INGRESS_NGINX}
    assert Need.S3_BUCKET in derived["gpu-s3"]
    assert Need.S3_BUCKET not in derived["gpu"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda d: d.name)
def test_overlay_table_matches_the_rendered_overlays(
    document: Path, derived: dict[str, set[Need]]
) -> None:
    rows = overlay_needs.table_rows(document)
    assert rows, f"no `| overlay | what it is | needs in the cluster |` table in {document}"
    assert overlay_needs.table_problems(rows, derived) == []


def _table(*rows: str) -> str:
    return "\n".join(
        ["| overlay | what it is | needs in the cluster |", "| --- | --- | --- |", *rows]
    )


def test_a_wrong_row_a_missing_row_and_an_unknown_overlay_are_caught(
    tmp_path: Path, derived: dict[str, set[Need]]
) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        CHECKOUT.joinpath("README.md")
        .read_text()
        # The old row: the CPU overlays' monitoring component left unsaid.
        .replace("as `cpu`, plus Prometheus Operator and KEDA", "as `cpu`, plus KEDA")
    )
    problems = overlay_needs.table_problems(overlay_needs.table_rows(readme), derived)
    assert any("`cpu-keda` also needs Prometheus Operator" in p for p in problems), problems

    readme.write_text(
        _table(
            "| `cpu` | local | nothing |",
            "| `gpu-xl` | no such overlay | a bucket |",
            "| all of them | no overlay named | nothing |",
        )
    )
    problems = overlay_needs.table_problems(overlay_needs.table_rows(readme), derived)
    assert any("`cpu` also needs the image loaded into the nodes" in p for p in problems)
    assert any("`gpu-xl` is no overlay" in p for p in problems), problems
    assert any("the row names no overlay" in p for p in problems), problems
    assert any("no row for overlay `gpu-keda`" in p for p in problems), problems


def test_a_row_claiming_a_need_the_overlay_lacks_is_caught(
    tmp_path: Path, derived: dict[str, set[Need]]
) -> None:
    document = tmp_path / "kubernetes.md"
    document.write_text(
        _table(
            "| `gpu` | x | GPU Operator, Prometheus Operator, a Gateway API implementation |",
            "| `gpu-hpa` | x | as `gpu`, plus KEDA |",
        )
    )
    rows = overlay_needs.table_rows(document)
    problems = overlay_needs.table_problems(rows, {k: derived[k] for k in ("gpu", "gpu-hpa")})
    assert problems == [
        "kubernetes.md:4: `gpu-hpa` also needs prometheus-adapter",
        "kubernetes.md:4: `gpu-hpa` does not need KEDA",
    ]
