"""Paths the docs name in running text exist, on every documented page (README.md, docs/, the
READMEs of perf/ and the kustomize components).

A path is read from inline code (`like/this`) when its first folder exists where such a path is
read from (the page's folder, the checkout, `kustomize/`, the three units' folders, ...); the
whole path must then exist there. Generated folders (`.work/`, `perf/results/`) and placeholders
are not checked.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.checkout import CHECKOUT
from tests.docs.markdown_blocks import DOCUMENTED_PAGES

PAGES = DOCUMENTED_PAGES
SEARCHED = [
    CHECKOUT,
    CHECKOUT / "kustomize",
    CHECKOUT / "serving",
    CHECKOUT / "inference_tools",
    CHECKOUT / "lab",
    CHECKOUT / "model_repository",
    CHECKOUT / "tests",
]
GENERATED = [CHECKOUT / "perf" / "results", CHECKOUT / ".work"]  # what the commands write
# Named as what a reader creates, not as a file of this checkout.
READER_CREATES = {"components/autoscaling-calibrated-gpu"}
_API_VERSION = re.compile(r"^[\w.]+/v\d\w*$")  # autoscaling/v2 is an API group, not a folder


def named_paths(markdown: str) -> list[str]:
    prose = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    paths = []
    for span in re.findall(r"`([^`\n]+)`", prose):
        for word in span.split():
            path = word.strip("(),;:'\"").split("::")[0].split("#")[0]
            placeholder = any(c in path for c in "<>*{}$=") or "..." in path
            generated = path.startswith(("/", ".work", ".venv", ".tools", "perf/results"))
            if "/" in path and "://" not in path and not placeholder and not generated:
                paths.append(path)
    return paths


def missing_paths(page: Path, markdown: str) -> list[str]:
    missing = []
    for path in named_paths(markdown):
        if path in READER_CREATES or _API_VERSION.match(path):
            continue
        roots = [r for r in (page.parent, *SEARCHED) if (r / path.split("/")[0]).exists()]
        if any((r / path).resolve().is_relative_to(g) for r in roots for g in GENERATED):
            continue
        if roots and not any((r / path).exists() for r in roots):
            missing.append(path)
    return missing


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(CHECKOUT)) for p in PAGES])
def test_named_paths_exist(page: Path) -> None:
    assert missing_paths(page, page.read_text()) == []


def test_a_renamed_path_is_caught() -> None:
    text = "The drain lives in `serving/pod_hooks/drain.py`; see `components/monitoring`."
    assert missing_paths(CHECKOUT / "README.md", text) == []
    renamed = text.replace("drain.py", "drainer.py").replace("monitoring", "monitor")
    assert missing_paths(CHECKOUT / "README.md", renamed) == [
        "serving/pod_hooks/drainer.py",
        "components/monitor",
    ]
