"""Renders every overlay (and every component on the base), and the Jobs, once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
from inference_tools.manifests.render import Render, render_all, render_jobs

from tests.checkout import KUSTOMIZE_DIR


@pytest.fixture(scope="session")
def k8s_work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kubernetes")


@pytest.fixture(scope="session")
def all_renders(k8s_work_dir: Path) -> list[Render]:
    return render_all(k8s_work_dir, KUSTOMIZE_DIR)


@pytest.fixture(scope="session")
def overlays(all_renders: list[Render]) -> list[Render]:
    found = [r for r in all_renders if not r.name.startswith("component:")]
    assert found, "no overlay under kustomize/overlays"
    return found


@pytest.fixture(scope="session")
def renders_by_name(all_renders: list[Render]) -> dict[str, Render]:
    return {r.name: r for r in all_renders}


@pytest.fixture(scope="session")
def job_renders() -> list[Render]:
    found = render_jobs(KUSTOMIZE_DIR)
    assert found, "no Job under kustomize/jobs"
    return found
