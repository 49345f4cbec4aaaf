"""The checkout's Makefile as the tests use it: its targets, and `make` run in the checkout."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.checkout import CHECKOUT


def run_make(
    *arguments: str, env: dict[str, str] | None = None, cwd: Path = CHECKOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", *arguments],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def makefile_targets(makefile: Path = CHECKOUT / "Makefile") -> set[str]:
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", makefile.read_text(), flags=re.MULTILINE))
