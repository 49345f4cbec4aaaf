"""The pod hooks run as the image runs them: the unit's folder copied alone, each hook started
through a link as `triton-drain` / `triton-probe`, by a Python that sees no third-party package
(`-I -S`: no site-packages, no PYTHONPATH, no user site)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pod_hooks
import pytest
from inference_tools.local_server import free_port

from tests.fakes.http_server import serving

UNIT = Path(pod_hooks.__file__).resolve().parent
HOOKS = {
    "triton-drain": "drain.py",
    "triton-probe": "health_probe.py",
    "triton-http-guard": "http_guard.py",
}


@pytest.fixture(scope="module")
def image_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """/opt/scalable-inference-server as the Dockerfile lays it out, in a temporary folder."""
    opt = tmp_path_factory.mktemp("opt")
    shutil.copytree(UNIT, opt / "pod_hooks", ignore=shutil.ignore_patterns("__pycache__"))
    (opt / "bin").mkdir()
    for name, file in HOOKS.items():
        (opt / "bin" / name).symlink_to(Path("..") / "pod_hooks" / file)
    return opt / "bin"


def run_hook(image_bin: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-I", "-S", str(image_bin / name), *args],
        cwd=image_bin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_unit_imports_only_the_standard_library_and_itself() -> None:
    for path in sorted(UNIT.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in sys.stdlib_module_names or top in ("__future__", "pod_hooks"), (
                    f"{path.name} imports {name}: the pod's Python has only the standard library"
                )


def test_no_third_party_package_is_importable_in_these_runs(image_bin: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", "import numpy"], capture_output=True, text=True
    )
    assert result.returncode != 0 and "No module named 'numpy'" in result.stderr


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_help(image_bin: Path, name: str) -> None:
    result = run_hook(image_bin, name, "--help")
    assert result.returncode == 0, result.stderr
    assert f"usage: {name}" in result.stdout


class MetricsPage(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metrics_server() -> Iterator[tuple[str, type[MetricsPage]]]:
    page = type("Page", (MetricsPage,), {})
    with serving(page) as url:
        yield f"{url}/metrics", page


PENDING = (
    "# HELP nv_inference_pending_request_count Instantaneous number of pending requests\n"
    "# TYPE nv_inference_pending_request_count gauge\n"
    'nv_inference_pending_request_count{{model="minilm",version="1"}} {pending}\n'
    'nv_inference_request_success{{model="minilm",version="1"}} 12\n'
)


def test_drain_reads_the_metrics_with_its_own_parser(image_bin: Path, metrics_server) -> None:
    url, page = metrics_server
    common = [f"--metrics-url={url}", "--http-url=", "--propagation-seconds=0", "--server-pid=0"]
    page.body = PENDING.format(pending=0).encode()
    idle = run_hook(image_bin, "triton-drain", *common, "--quiet-seconds=0.2")
    assert idle.returncode == 0, idle.stderr
    assert "idle after" in idle.stderr
    page.body = PENDING.format(pending=3).encode()
    busy = run_hook(
        image_bin, "triton-drain", *common, "--quiet-seconds=0.2", "--deadline-seconds=0.5"
    )
    assert busy.returncode == 1
    assert "pending_requests=3.0" in busy.stderr


def test_probe_says_unhealthy_where_no_server_answers(image_bin: Path) -> None:
    result = run_hook(
        image_bin, "triton-probe", f"--url=http://127.0.0.1:{free_port()}", "--timeout-seconds=1"
    )
    assert result.returncode == 1
    assert result.stderr.strip(), "the kubelet shows a failed probe's output: it must say why"
