"""The package as another team installs it: a wheel (not this checkout), run from a folder that
is not the checkout, with its folders given as arguments.

The wheel goes into a fresh venv with `--no-deps`; its dependencies come from this venv's
site-packages through a .pth file, so nothing is downloaded. The .pth adds that folder only:
the editable install of this checkout that lives there (a .pth of its own) stays inactive.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as httpclient

from tests.checkout import CHECKOUT, KUSTOMIZE_DIR
from tests.serve_process import ServeProcess

pytestmark = pytest.mark.slow

# What the Dockerfile's first stage copies too: the files a build needs.
SOURCES = ("pyproject.toml", "README.md", "inference_tools", "serving")
CRD_VALIDATION_DIR = CHECKOUT / "inference_tools" / "manifests" / "crd_validation"


@dataclass(frozen=True)
class Installed:
    bin_dir: Path
    elsewhere: Path  # an empty folder to run the commands from
    wheel: Path

    def run(self, *args: str, timeout_s: float = 300.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin_dir / "inference-tools"), *args],
            cwd=self.elsewhere,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    def env(self) -> dict[str, str]:
        # This venv's bin after the fresh one's: kubectl and perf_analyzer are executables there.
        path = os.pathsep.join([str(self.bin_dir), str(Path(sys.executable).parent)])
        env = {k: v for k, v in os.environ.items() if k != "INFERENCE_TOOLS_WORK_DIR"}
        return {**env, "PATH": f"{path}{os.pathsep}{env.get('PATH', '')}"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    for name in SOURCES:
        origin = CHECKOUT / name
        if origin.is_dir():
            ignore = shutil.ignore_patterns("node_modules", "__pycache__", "*.egg-info")
            shutil.copytree(origin, source / name, ignore=ignore)
        else:
            source.mkdir(exist_ok=True)
            shutil.copy2(origin, source / name)
    dist = root / "dist"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(dist),
            str(source),
        ],
        check=True,
        cwd=root,
    )
    (wheel,) = dist.glob("*.whl")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    site_packages = venv / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    (site_packages / "site-packages" / "outer-venv.pth").write_text(
        sysconfig.get_paths()["purelib"] + "\n"
    )
    pip = [str(venv / "bin" / "python"), "-m", "pip"]
    subprocess.run([*pip, "install", "--quiet", "--no-deps", "--no-index", str(wheel)], check=True)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return Installed(venv / "bin", elsewhere, wheel)


def test_the_wheel_holds_the_tooling_and_the_serving_unit_and_no_heavy_dependency(
    installed: Installed,
) -> None:
    with zipfile.ZipFile(installed.wheel) as wheel:
        names = wheel.namelist()
        metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in wheel.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    packages = {name.split("/")[0] for name in names if not name.split("/")[0].endswith("-info")}
    assert packages == {"inference_tools", "pod_hooks", "python_backend"}
    # What `pip install` pulls by default: no plotting, web framework or training package.
    runtime = {re.split(r"[\s=<>!~\[;]", r)[0].lower() for r in requires if "extra ==" not in r}
    assert runtime & {"matplotlib", "fastapi", "uvicorn", "scikit-learn"} == set()


def test_the_commands_come_from_the_wheel_not_the_checkout(installed: Installed) -> None:
    found = subprocess.run(
        [
            str(installed.bin_dir / "python"),
            "-c",
            "import inference_tools, pod_hooks, python_backend;"
            "print(inference_tools.__file__, pod_hooks.__file__, python_backend.__file__)",
        ],
        cwd=installed.elsewhere,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert all(Path(path).is_relative_to(installed.bin_dir.parent) for path in found), found


def test_help_of_the_cli_and_of_publish(installed: Installed) -> None:
    top = installed.run("--help")
    assert top.returncode == 0, top.stderr
    for command in ("serve", "validate-manifests", "publish", "autoscaling", "perf"):
        assert command in top.stdout
    publish = installed.run("publish", "--help")
    assert publish.returncode == 0, publish.stderr
    assert "--store" in publish.stdout


def test_validate_manifests_of_a_kustomize_folder_given_as_argument(installed: Installed) -> None:
    assert installed.run("validate-manifests", "--help").returncode == 0
    result = installed.run(
        "validate-manifests",
        f"--kustomize-dir={KUSTOMIZE_DIR}",
        f"--checkov={CHECKOUT / '.tools' / 'checkov' / 'bin' / 'checkov'}",
        # The packaged validate.mjs has no npm models beside it in a fresh install; the
        # checkout's copy has them (`make manifest-tools`).
        f"--crd-validation-dir={CRD_VALIDATION_DIR}",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok   custom resources" in result.stdout and "ok   checkov" in result.stdout


def test_validate_manifests_without_a_kustomize_folder_says_what_to_pass(
    installed: Installed,
) -> None:
    result = installed.run("validate-manifests")
    assert result.returncode == 1
    assert "no overlay under kustomize/overlays" in result.stderr
    assert "--kustomize-dir" in result.stderr


@pytest.mark.server
def test_serve_a_copy_of_the_model_repository(installed: Installed, model_repository: Path) -> None:
    repository = installed.elsewhere / "models"
    shutil.copytree(model_repository, repository, ignore=shutil.ignore_patterns("__pycache__"))
    server = ServeProcess(
        [str(installed.bin_dir / "inference-tools"), "serve", "--model-repository=models"],
        cwd=installed.elsewhere,
        env=installed.env(),
    )
    with server:
        client = httpclient.InferenceServerClient(server.http_url)
        text = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[b"served from a wheel"]], dtype=object))
        embedding = client.infer("text_embedding", [text]).as_numpy("EMBEDDING")
        client.close()
        assert embedding.shape == (1, 384)
        assert (installed.elsewhere / ".work" / "tritonserver").is_dir()  # its own scratch
        assert server.stop() == 0, server.log


def test_the_serving_unit_builds_its_own_wheel(tmp_path: Path) -> None:
    """serving/ installs alone, as the image takes it: its two packages, its hooks as scripts, the
    image's Python 3.10 allowed, numpy and tokenizers its only dependencies."""
    source = tmp_path / "serving"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    shutil.copytree(CHECKOUT / "serving", source, ignore=ignore)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(tmp_path), source],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("scalable_inference_serving-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{info}/METADATA").decode()
        scripts = archive.read(f"{info}/entry_points.txt").decode()
    assert {name.split("/")[0] for name in names} == {"python_backend", "pod_hooks", info}
    assert "Requires-Python: >=3.10" in metadata
    requires = sorted(
        line.split(":", 1)[1].strip()
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:")
    )
    assert requires == ["numpy==1.26.4", "tokenizers==0.23.3"]
    for script in ("triton-drain", "triton-probe", "triton-fit-instances"):
        assert f"{script} = pod_hooks." in scripts
