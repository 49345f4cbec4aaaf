"""The client examples in README.md work when pasted, against the real server."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.server
README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python_examples() -> list[str]:
    section = README.read_text().split("## Call it", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def test_readme_has_http_and_grpc_examples():
    examples = readme_python_examples()
    assert len(examples) == 2
    assert "localhost:8000" in examples[0] and "localhost:8001" in examples[1]


@pytest.mark.parametrize("index", [0, 1], ids=["http", "grpc"])
def test_readme_example_prints_an_embedding(triton_server, index):
    code = readme_python_examples()[index]
    # The README talks to the default ports; the test server runs on free ones.
    code = code.replace("localhost:8000", triton_server.http_url)
    code = code.replace("localhost:8001", triton_server.grpc_url)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    shape, similarity = result.stdout.split(")")
    assert shape == "(2, 384"
    # Two descriptions of the same scene: related, not identical.
    assert 0.3 < float(similarity) < 0.99
