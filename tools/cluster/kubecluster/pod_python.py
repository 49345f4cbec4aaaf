"""The Python that pods run: the image's python3 with what its models import, rebuilt here.

The serving image has a python3 of its own that the Python-backend stubs embed and the pod hooks
run under. The checkout's .venv cannot stand in for it: its interpreter may sit under a home
folder that the pod's non-root user (runAsUser) cannot enter. So the pods get a venv of the
system's Python 3.11 (world-readable) with the project's pins of the packages the models import.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from kubecluster.layout import CHECKOUT

SYSTEM_PYTHON = Path("/usr/bin/python3.11")
# What the models and the Python-based onnxruntime backend import (Dockerfile: tokenizers, numpy;
# the image's C++ onnxruntime backend is replaced here by the Python package).
MODEL_IMPORTS = ("numpy", "tokenizers", "onnxruntime")


def pinned_requirements(pyproject: Path = CHECKOUT / "pyproject.toml") -> list[str]:
    text = pyproject.read_text()
    requirements = []
    for name in MODEL_IMPORTS:
        match = re.search(rf'"({re.escape(name)}==[^"]+)"', text)
        if match is None:
            raise RuntimeError(f"{pyproject} pins no {name}")
        requirements.append(match.group(1))
    return requirements


def ensure_pod_python(folder: Path) -> Path:
    """Create (once per set of pins) and return the venv's bin folder."""
    requirements = pinned_requirements()
    stamp = folder / ".requirements"
    if stamp.is_file() and stamp.read_text() == "\n".join(requirements):
        return folder / "bin"
    if not SYSTEM_PYTHON.is_file():
        raise RuntimeError(f"{SYSTEM_PYTHON} not found: the pods' Python (Debian: python3.11-venv)")
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", "--clear", str(folder)], check=True)
    subprocess.run(
        [str(folder / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check",
         *requirements],
        check=True,
    )  # fmt: skip
    # The Python-based onnxruntime backend that stands in for the image's C++ one imports the
    # project's ONNX runner (inference_tools.onnx_model, which imports the serving unit):
    # make both packages importable.
    site_packages = next((folder / "lib").glob("python3*/site-packages"))
    (site_packages / "scalable_inference_server_scripts.pth").write_text(
        f"{CHECKOUT}\n{CHECKOUT / 'serving'}\n"
    )
    stamp.write_text("\n".join(requirements))
    return folder / "bin"
