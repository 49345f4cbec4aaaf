"""The fenced code blocks of the project's Markdown, each with the check it is marked for.

A block is marked by an HTML comment on the line before its opening fence (invisible once
rendered):

    <!-- doc-check: run -->        a test executes it (tests/docs/runners.py)
    <!-- doc-check: validate -->   its commands, flags, files and manifests are checked statically
    <!-- doc-check: text -->       not a command: a diagram, a listing, sample output

`validate` may name options after the kind, `key=value`: `merge-into=team-a` for a YAML fragment
that extends the kustomization an earlier block of the page shows as `team-a/kustomization.yaml`;
`extends=kustomize/overlays/gpu-s3` for one that extends a kustomization (or a component, on the
base) of the checkout.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from tests.checkout import CHECKOUT

KINDS = ("run", "validate", "text")
DOCUMENTED_PAGES = (
    CHECKOUT / "README.md",
    *sorted((CHECKOUT / "docs").glob("*.md")),
    CHECKOUT / "perf" / "README.md",
    *sorted((CHECKOUT / "kustomize").glob("**/README.md")),
)

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)(?P<language>[\w+-]*)\s*$")
_MARKER = re.compile(r"^\s*<!--\s*doc-check:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass(frozen=True)
class DocBlock:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    text: str  # dedented to the fence's indentation
    kind: str | None  # None: not marked
    options: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        page = self.page.relative_to(CHECKOUT) if self.page.is_relative_to(CHECKOUT) else self.page
        return f"{page}:{self.line}"

    @property
    def first_line_comment(self) -> str | None:
        """`# team-a/kustomization.yaml` on the first line names the file the block shows."""
        first = self.text.splitlines()[0] if self.text else ""
        match = re.fullmatch(r"#\s*(\S+)\s*", first)
        return match.group(1) if match else None


class MarkerError(ValueError):
    pass


def parse_marker(line: str) -> tuple[str, dict[str, str]] | None:
    match = _MARKER.match(line)
    if not match:
        return None
    kind, *words = match.group("body").split()
    if kind not in KINDS:
        raise MarkerError(f"unknown doc-check kind {kind!r}: use one of {', '.join(KINDS)}")
    options = {}
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            raise MarkerError(f"doc-check option {word!r} is not key=value")
        options[key] = value
    return kind, options


def blocks_in(text: str, page: Path) -> list[DocBlock]:
    lines = text.splitlines()
    found: list[DocBlock] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        fence = opening.group("fence")
        end = index + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        marker = parse_marker(lines[index - 1]) if index > 0 else None
        body = textwrap.dedent("\n".join(lines[index + 1 : end]))
        kind, options = marker if marker else (None, {})
        found.append(DocBlock(page, index + 1, opening.group("language"), body, kind, options))
        index = end + 1
    return found


def documented_blocks() -> list[DocBlock]:
    return [block for page in DOCUMENTED_PAGES for block in blocks_in(page.read_text(), page)]
