"""The doc checker fails on what drifts: each case is a doc snippet broken on purpose."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checkout import CHECKOUT
from tests.docs.doc_checks import DocChecker, shell_commands
from tests.docs.markdown_blocks import MarkerError, blocks_in

pytestmark = pytest.mark.kubernetes  # some cases render with kubectl


def problems_of(markdown: str, tmp_path: Path) -> list[str]:
    checker = DocChecker(CHECKOUT, tmp_path)
    return [p for block in blocks_in(markdown, tmp_path / "page.md") for p in checker.check(block)]


def fenced(kind: str | None, language: str, body: str) -> str:
    marker = f"<!-- doc-check: {kind} -->\n" if kind else ""
    return f"Some prose.\n\n{marker}```{language}\n{body}\n```\n"


BROKEN = {
    "unmarked block": (None, "bash", "make test", "not marked"),
    "command marked as text": ("text", "bash", "make test", "a bash block marked text"),
    "unknown CLI flag": (
        "validate",
        "bash",
        "inference-tools serve --no-such-flag",
        "unrecognized",
    ),
    "unknown make target": ("validate", "bash", "make no-such-target", "no target no-such-target"),
    "make variable the target ignores": (
        "validate",
        "bash",
        "make perf NOT_READ_BY_PERF=1",
        "NOT_READ_BY_PERF= does not reach",
    ),
    "make variable that breaks the command it reaches": (
        "validate",
        "bash",
        "make serve HTTP_PORT=eighty",
        "invalid int value: 'eighty'",
    ),
    "overlay that does not exist": (
        "validate",
        "bash",
        "kubectl apply -k kustomize/overlays/no-such-overlay",
        "kustomize/overlays/no-such-overlay does not exist",
    ),
    "unknown kubectl flag": (
        "validate",
        "bash",
        "kubectl -n inference rollout status deployment/triton --no-such-flag=1",
        "kubectl rollout status deployment/triton has no --no-such-flag",
    ),
    "pytest path and marker": (
        "validate",
        "bash",
        '.venv/bin/pytest tests/no_such_folder -m "not quick"',
        "marker quick is not registered",
    ),
    "program without a rule": ("validate", "bash", "frobnicate --all", "no rule checks"),
    "help of a command that does not exist": (
        "validate",
        "bash",
        "inference-tools no-such-command --help",
        "exit 2",
    ),
    "misspelt Kubernetes field": (
        "validate",
        "yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndatta: {a: b}",
        "datta",
    ),
    "kustomize image name that matches nothing": (
        "validate",
        "yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        "  - https://github.com/OWNER/scalable-inference-server//kustomize/overlays/cpu?ref=v1\n"
        "images:\n  - name: scalable-inference-server\n    newName: registry.example.com/x",
        "images: scalable-inference-server is no image of what it patches",
    ),
    "ConfigMap merge beside the component that overwrites it": (
        "validate",
        "yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n"
        "  - https://github.com/OWNER/scalable-inference-server//kustomize/overlays/cpu?ref=v1\n"
        "components:\n"
        "  - https://github.com/OWNER/scalable-inference-server//kustomize/components/"
        "model-store-s3?ref=v1\n"
        "configMapGenerator:\n  - name: triton-server\n    behavior: merge\n"
        "    literals: [MODEL_REPOSITORY=s3://my-bucket/models]",
        "MODEL_REPOSITORY=s3://my-bucket/models does not reach the rendered ConfigMap",
    ),
    "YAML fragment without its base": ("validate", "yaml", "patches: []", "a YAML fragment"),
    "Python that does not compile": ("run", "python", "print(", "does not compile"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_broken_snippet_is_reported(case: str, tmp_path: Path) -> None:
    kind, language, body, expected = BROKEN[case]
    problems = problems_of(fenced(kind, language, body), tmp_path)
    assert any(expected in problem for problem in problems), problems


def test_the_same_snippets_written_right_pass(tmp_path: Path) -> None:
    right = [
        ("validate", "bash", "inference-tools serve --http-port 9000"),
        ("validate", "bash", "make perf PERF_PROTOCOL=grpc"),
        ("validate", "bash", "kubectl -n inference rollout status deployment/triton --timeout=1m"),
        ("validate", "bash", '.venv/bin/pytest tests/docs -m "not slow"'),
        ("validate", "yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: b}"),
        ("text", "", "client --> server"),
    ]
    markdown = "".join(fenced(*case) for case in right)
    assert problems_of(markdown, tmp_path) == []


def test_a_broken_readme_fails(tmp_path: Path) -> None:
    """The README as shipped, with one variable misspelt in one command: the checker names it."""
    readme = (CHECKOUT / "README.md").read_text()
    assert "make perf PERF_PROTOCOL=grpc" in readme
    broken = readme.replace("make perf PERF_PROTOCOL=grpc", "make perf PERF_PROTOCOLS=grpc", 1)
    problems = problems_of(broken, tmp_path)
    assert len(problems) == 1 and "PERF_PROTOCOLS= does not reach" in problems[0], problems


def test_unknown_marker_kind_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MarkerError, match="unknown doc-check kind 'skip'"):
        problems_of(fenced("skip", "bash", "make test"), tmp_path)


def test_shell_commands_reads_placeholders_pipelines_and_continuations() -> None:
    script = (
        "make publish-model MODEL=<folder | file.onnx> [NAME=...]  # a comment\n"
        "kubectl kustomize x | kubectl apply -f - && echo done\n"
        "inference-tools serve \\\n    --http-port 9000 > serve.log 2>&1\n"
    )
    assert shell_commands(script) == [
        ["make", "publish-model", "MODEL=PLACEHOLDER", "NAME=..."],
        ["kubectl", "kustomize", "x"],
        ["kubectl", "apply", "-f", "-"],
        ["echo", "done"],
        ["inference-tools", "serve", "--http-port", "9000"],
    ]
