"""What the docs say a make target does is what its recipe runs (a dry run shows it)."""

from __future__ import annotations

import re
import subprocess

from tests.checkout import CHECKOUT
from tests.makefile import makefile_targets, run_make


def dry_run(*arguments: str) -> str:
    result = run_make("-n", *arguments)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_make_validate_runs_every_check_docs_kubernetes_lists() -> None:
    """docs/kubernetes.md, "Validation without a cluster": `make validate` renders, validates and
    also runs the cross-reference tests and hadolint, actionlint and yamllint."""
    docs = (CHECKOUT / "docs" / "kubernetes.md").read_text()
    section = docs.split("### Validation without a cluster", 1)[1].split("\n## ", 1)[0]
    assert "`make validate`" in section
    recipe = dry_run("validate")
    assert "inference-tools validate-manifests" in recipe
    assert re.search(r"pytest .*tests/kubernetes", recipe)
    lint_tests = (CHECKOUT / "tests" / "kubernetes" / "test_lint.py").read_text()
    for tool in ("hadolint", "actionlint", "yamllint"):
        assert tool in section and tool in lint_tests
    assert (CHECKOUT / "tests" / "kubernetes" / "test_cross_references.py").is_file()


def test_make_alone_lists_every_target_with_what_it_does() -> None:
    """README: "`make` alone lists every target"; each public target explains itself there."""
    listing = subprocess.run(["make"], cwd=CHECKOUT, capture_output=True, text=True, check=True)
    listed = set(re.findall(r"^\s*(?:\x1b\[\d+m)?([\w-]+)", listing.stdout, flags=re.MULTILINE))
    internal = {"system-deps-where-possible"}  # a step of `make test`, not a user task
    phony = set(re.findall(r"^\.PHONY: (.+)$", (CHECKOUT / "Makefile").read_text(), re.MULTILINE))
    assert phony <= makefile_targets()
    assert phony - internal <= listed, sorted(phony - internal - listed)


def test_make_test_is_what_ci_runs() -> None:
    """README: `.ci/run` runs exactly the README's test command."""
    ci = (CHECKOUT / ".ci" / "run").read_text()
    assert re.search(r"^\s*make test\b", ci, flags=re.MULTILINE)
