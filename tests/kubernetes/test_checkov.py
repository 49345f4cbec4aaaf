"""checkov's Kubernetes policies on every overlay: nothing fails, every skip is documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from inference_tools.manifests import validation
from inference_tools.manifests.render import Render
from inference_tools.manifests.validation import CheckovFinding

from tests.checkout import CHECKOUT

pytestmark = pytest.mark.kubernetes
EXCEPTIONS_DOC = CHECKOUT / "docs" / "security-exceptions.md"
# A table row: | CKV_K8S_43 (what it checks) | Deployment `triton` | where | reason |
EXCEPTION_ROW = re.compile(r"^\| (CKV_[A-Z0-9_]+) [^|]*\| (\w+) `([^`]+)` \|", re.MULTILINE)


@pytest.fixture(scope="module")
def findings(
    overlays: list[Render], job_renders: list[Render], k8s_work_dir: Path
) -> list[CheckovFinding]:
    return validation.run_checkov(overlays + job_renders, k8s_work_dir)


def test_checkov_finds_no_failed_check_in_any_overlay_or_job(
    findings: list[CheckovFinding], overlays: list[Render], job_renders: list[Render]
) -> None:
    failed = [f for f in findings if f.result == "failed"]
    assert failed == []
    # checkov looked at every overlay and Job (each has at least one documented skip).
    assert {f.render for f in findings} == {r.name for r in overlays + job_renders}


def test_every_skip_has_a_reason_and_is_listed_in_the_exceptions_document(
    findings: list[CheckovFinding],
) -> None:
    documented = {
        (check, f"{kind}.{name}")
        for check, kind, name in EXCEPTION_ROW.findall(EXCEPTIONS_DOC.read_text())
    }
    assert documented, "no exception rows found in docs/security-exceptions.md"
    skipped = set()
    for finding in (f for f in findings if f.result == "skipped"):
        assert len(finding.reason.split()) >= 8, f"{finding}: give the reason in a sentence"
        kind, _namespace, name = finding.resource.split(".", 2)
        skipped.add((finding.check_id, f"{kind}.{name}"))
    assert skipped <= documented, f"undocumented skips: {skipped - documented}"
    assert documented <= skipped, f"documented exceptions no overlay has: {documented - skipped}"
