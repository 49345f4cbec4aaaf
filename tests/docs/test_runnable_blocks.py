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
import shlex
import signal
import subprocess
import sys
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.checkout import CHECKOUT
from tests.docs.doc_checks import shell_commands
from tests.docs.markdown_blocks import DocBlock, documented_blocks

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


def _with_addresses(text: str, http: str, grpc: str, work: Path) -> str:
    text = re.sub(r"(localhost|127\.0\.0\.1):8000\b", http, text)
    text = re.sub(r"(localhost|127\.0\.0\.1):8001\b", grpc, text)
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
    text = _with_addresses(block.text, triton_server.http_url, triton_server.grpc_url, tmp_path)
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


class _BackgroundServe:
    """`inference-tools serve ...` from a doc line, on free ports, until the test ends."""

    def __init__(self, argv: list[str], http_port: int, grpc_port: int, metrics_port: int) -> None:
        ports = ["--http-port", str(http_port), "--grpc-port", str(grpc_port)]
        ports += ["--metrics-port", str(metrics_port)]
        at = argv.index("serve") + 1
        self.argv = [
            str(Path(sys.prefix) / "bin" / "inference-tools"),
            *argv[1:at],
            *ports,
            *argv[at:],
        ]
        self.process = subprocess.Popen(
            self.argv, cwd=CHECKOUT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.output: list[str] = []
        self.ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith("Press Ctrl-C to stop."):
                self.ready.set()

    def wait_ready(self, timeout_s: float) -> None:
        if not self.ready.wait(timeout_s):
            raise AssertionError(f"{shlex.join(self.argv)} did not start:\n{''.join(self.output)}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=120)


@pytest.fixture
def free_ports() -> Iterator[tuple[int, int, int]]:
    from inference_tools.local_server import free_port

    yield free_port(), free_port(), free_port()


WALKTHROUGHS = [b for b in RUN_BLOCKS if _starts_a_server(b)]


@pytest.mark.slow
@pytest.mark.parametrize("block", WALKTHROUGHS, ids=_ids(WALKTHROUGHS))
def test_walkthrough_runs_with_its_own_server(
    block: DocBlock, tmp_path: Path, free_ports: tuple[int, int, int]
) -> None:
    http, grpc, metrics = free_ports
    text = _with_addresses(block.text, f"127.0.0.1:{http}", f"127.0.0.1:{grpc}", tmp_path)
    lines = text.replace("\\\n", " ").splitlines()
    serve_line = next(i for i, line in enumerate(lines) if _serves(line))
    # What comes before the server (set-up) runs first, then the server, then the rest.
    before = _run("bash", "\n".join(lines[:serve_line]))
    assert before.returncode == 0, before.stderr
    server = _BackgroundServe(shell_commands(lines[serve_line])[0], http, grpc, metrics)
    try:
        server.wait_ready(timeout_s=300)
        after = _run("bash", "\n".join(lines[serve_line + 1 :]))
        assert after.returncode == 0, f"{block.name} failed:\n{after.stdout}\n{after.stderr}"
        served = _served_models(f"127.0.0.1:{http}")
    finally:
        assert server.stop() == 0, "".join(server.output)
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
