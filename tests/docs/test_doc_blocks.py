"""Every fenced block of README.md and docs/*.md is marked, and what it shows is true.

`validate` and `run` blocks are checked statically here (tests/docs/doc_checks.py); `run` blocks
are also executed, in test_runnable_blocks.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.checkout import CHECKOUT
from tests.docs.doc_checks import DocChecker
from tests.docs.markdown_blocks import DOCUMENTED_PAGES, blocks_in

pytestmark = pytest.mark.kubernetes  # renders overlays with kubectl


@pytest.fixture(scope="module")
def page_problems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    """Problems per block, each page checked in order (later blocks may use earlier files)."""
    problems: dict[str, list[str]] = {}
    for page in DOCUMENTED_PAGES:
        checker = DocChecker(CHECKOUT, tmp_path_factory.mktemp(page.parent.name))
        for block in blocks_in(page.read_text(), page):
            problems[block.name] = checker.check(block)
    return problems


def _block_names() -> list[str]:
    return [b.name for page in DOCUMENTED_PAGES for b in blocks_in(page.read_text(), page)]


@pytest.mark.parametrize("name", _block_names())
def test_doc_block_is_true(page_problems: dict[str, list[str]], name: str) -> None:
    assert page_problems[name] == [], f"{name}:\n" + "\n".join(page_problems[name])


def test_every_page_is_covered() -> None:
    pages = {p.relative_to(CHECKOUT) for p in DOCUMENTED_PAGES}
    assert Path("README.md") in pages
    assert {p.relative_to(CHECKOUT) for p in (CHECKOUT / "docs").glob("*.md")} <= pages
