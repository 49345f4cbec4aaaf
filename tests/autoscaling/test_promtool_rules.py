"""`promtool test rules` on the recording rules and alerts exactly as an overlay renders them."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from inference_tools.autoscaling import rendered_settings

# Missing, it raises SystemPackageMissing: a skip here, a failure in CI (the root conftest).
from inference_tools.manifests.validation import promtool

from tests.checkout import KUSTOMIZE_DIR

PROMTOOL_TESTS = Path(__file__).parent / "promtool"
OVERLAY = KUSTOMIZE_DIR / "overlays" / "cpu-hpa"


@pytest.fixture(scope="module")
def rule_file() -> dict:
    return rendered_settings.prometheus_rule_file(rendered_settings.render(OVERLAY))


@pytest.mark.parametrize("test_file", sorted(p.name for p in PROMTOOL_TESTS.glob("*.test.yaml")))
def test_promtool_unit_tests_pass(rule_file: dict, test_file: str, tmp_path: Path) -> None:
    (tmp_path / "triton-rules.yaml").write_text(yaml.safe_dump(rule_file, sort_keys=False))
    shutil.copy(PROMTOOL_TESTS / test_file, tmp_path / test_file)
    result = subprocess.run(
        [promtool(), "test", "rules", test_file],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rules_pass_promtool_check(rule_file: dict, tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rule_file, sort_keys=False))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_name_no_model_job_or_service(rule_file: dict) -> None:
    # A team's own models, a namePrefix or a second release must need no PromQL edit.
    expressions = [
        rule["expr"] for group in rule_file["groups"] for rule in group["rules"] if "expr" in rule
    ]
    for expression in expressions:
        assert not re.search(
            r"\b(model|job|service|scaletargetref_name)\s*(=~|!~|=|!=)", expression
        ), expression
