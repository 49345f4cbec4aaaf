"""The blocks marked `run` run as a reader would paste them, against a real local Triton.

The docs talk to the default ports (8000, 8001); the tests serve on free ones and rewrite the
addresses, and a block's `.work/` folder becomes a temporary one. A block that starts
`inference-tools serve` (a walkthrough: "in another terminal, ...") gets that server started
from its own command line, on free ports, before the rest of the block runs in bash.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.checkout import CHECKOUT
from tests.docs.doc_checks import shell_commands
from tests.docs.markdown_blocks import DocBlock, documented_blocks
from tests.serve_process import ServeProcess

pytestmark = pytest.mark.server
RUN_BLOCKS = [block for block in documented_blocks() if block.kind == "run"]
SHELLS = {"bash", "sh"}


def _serves(shell_text: str) -> bool:
    return any(
        Path(argv[0]).name == "inference-tools" and "serve" in argv
        for argv in shell_commands(shell_text)
    )


def _starts_a_server(block: DocBlock) -> bool:
    return block.language in SHELLS and _serves(block.text)


def _at_ports(text: str, http: str, grpc: str) -> str:
    text = re.sub(r"(localhost|127\.0\.0\.1):8000\b", http, text)
    return re.sub(r"(localhost|127\.0\.0\.1):8001\b", grpc, text)


def _in_scratch(text: str, work: Path) -> str:
    return re.sub(r"(?<![\w/])\.work/", f"{work}/", text)


def _run(language: str, text: str) -> subprocess.CompletedProcess[str]:
    command = (
        [sys.executable, "-c", text]
        if language == "python"
        else ["bash", "-euo", "pipefail", "-c", text]
    )
    env = {**os.environ, "PATH": f"{Path(sys.prefix) / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        command, cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=900
    )


def _ids(blocks: list[DocBlock]) -> list[str]:
    return [block.name for block in blocks]


def test_every_run_block_has_a_runner() -> None:
    assert RUN_BLOCKS, "no block is marked run"
    assert {block.language for block in RUN_BLOCKS} <= SHELLS | {"python"}


AGAINST_THE_SESSION_SERVER = [b for b in RUN_BLOCKS if not _starts_a_server(b)]


@pytest.mark.parametrize("block", AGAINST_THE_SESSION_SERVER, ids=_ids(AGAINST_THE_SESSION_SERVER))
def test_block_runs_against_the_local_server(
    block: DocBlock, triton_server, tmp_path: Path
) -> None:
    text = _in_scratch(block.text, tmp_path)
    text = _at_ports(text, triton_server.http_url, triton_server.grpc_url)
    result = _run(block.language, text)
    assert result.returncode == 0, f"{block.name} failed:\n{result.stdout}\n{result.stderr}"
    # What the page says the block prints.
    if "embeddings.shape" in block.text:  # README: "Both print `(2, 384)` and the cosine ..."
        shape, similarity = result.stdout.split(")")
        assert shape == "(2, 384"
        assert 0.3 < float(similarity) < 0.99  # two descriptions of one scene: related, not equal
    if block.text.startswith("curl"):
        (output,) = json.loads(result.stdout)["outputs"]
        assert (output["name"], output["shape"]) == ("EMBEDDING", [1, 384])


WALKTHROUGHS = [b for b in RUN_BLOCKS if _starts_a_server(b)]


@pytest.mark.slow
@pytest.mark.parametrize("block", WALKTHROUGHS, ids=_ids(WALKTHROUGHS))
def test_walkthrough_runs_with_its_own_server(block: DocBlock, tmp_path: Path) -> None:
    lines = _in_scratch(block.text, tmp_path).replace("\\\n", " ").splitlines()
    serve_line = next(i for i, line in enumerate(lines) if _serves(line))
    serve_argv = shell_commands(lines[serve_line])[0]
    server = ServeProcess(
        [str(Path(sys.prefix) / "bin" / "inference-tools"), *serve_argv[1:]], cwd=CHECKOUT
    )
    text = _at_ports("\n".join(lines), server.http_url, server.grpc_url)
    lines = text.splitlines()
    # What comes before the server (set-up) runs first, then the server, then the rest.
    before = _run("bash", "\n".join(lines[:serve_line]))
    assert before.returncode == 0, before.stderr
    with server:
        after = _run("bash", "\n".join(lines[serve_line + 1 :]))
        assert after.returncode == 0, f"{block.name} failed:\n{after.stdout}\n{after.stderr}"
        served = _served_models(server.http_url)
        assert server.stop() == 0, server.log
    published = set(re.findall(r"model_repository/(\w+)", text))
    assert published, "the walkthrough publishes nothing"
    assert published <= served, f"published {published}, serving {served}"


def _served_models(http: str) -> set[str]:
    request = urllib.request.Request(
        f"http://{http}/v2/repository/index", data=b"{}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        index = json.load(response)
    return {entry["name"] for entry in index if entry.get("state") == "READY"}
