"""Prepare the tritonserver that nvidia-pytriton bundles so it can run from a project folder.

The wheel ships a real tritonserver 2.51.0 (the NGC 24.10 release) with the Python backend, but
its backend folder lacks the stub for the running interpreter, and site-packages is no place to
write into. So the tree is copied once into the work folder, the stub for this Python is put
beside `libtriton_python.so`, and our Python-based `onnxruntime` backend is installed next to it:
production images run ONNX models with the C++ backend of the same name, which the wheel lacks.
"""

from __future__ import annotations

import ctypes.util
import hashlib
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from inference_tools.system_packages import SystemPackageMissing

PYTHON_BASED_BACKENDS_SOURCE = Path(__file__).resolve().parent / "local_backends"


class RuntimeNotInstalledError(RuntimeError):
    pass


@dataclass(frozen=True)
class TritonRuntime:
    tritonserver: Path
    backends_dir: Path
    env: dict[str, str]


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeNotInstalledError(
            f"Python package {module!r} is not installed in {sys.prefix}; run `make setup`"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _bundled_server_dir() -> Path:
    return _package_dir("pytriton") / "tritonserver"


def _bundled_libraries_dir() -> Path:
    return _package_dir("pytriton").parent / "nvidia_pytriton.libs"


def _python_version_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _tree_digest(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _install_python_based_backends(backends_dir: Path) -> None:
    """Copy each `local_backends/<name>/` into the runtime's backend folder."""
    for source in sorted(PYTHON_BASED_BACKENDS_SOURCE.iterdir()):
        if not (source / "model.py").is_file():
            continue
        target = backends_dir / source.name
        if target.exists() and _tree_digest(target) == _tree_digest(source):
            continue
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))


def prepare_runtime(work_dir: Path) -> TritonRuntime:
    """Copy the bundled server into `work_dir/tritonserver` (once) and return how to run it."""
    bundled = _bundled_server_dir()
    runtime_dir = work_dir / "tritonserver"
    stamp = runtime_dir / ".prepared-from"
    source_id = f"{bundled}:{_python_version_tag()}"
    if not stamp.is_file() or stamp.read_text() != source_id:
        shutil.rmtree(runtime_dir, ignore_errors=True)
        runtime_dir.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(bundled, runtime_dir, ignore=shutil.ignore_patterns("__pycache__"))
        stub = (
            bundled / "python_backend_stubs" / _python_version_tag() / "triton_python_backend_stub"
        )
        if not stub.is_file():
            raise RuntimeNotInstalledError(
                f"nvidia-pytriton has no Python backend stub for Python {_python_version_tag()}; "
                "use Python 3.11 (see pyproject.toml)"
            )
        shutil.copy2(stub, runtime_dir / "backends" / "python" / stub.name)
        stamp.write_text(source_id)
    backends_dir = runtime_dir / "backends"
    _install_python_based_backends(backends_dir)
    return TritonRuntime(
        tritonserver=runtime_dir / "bin" / "tritonserver",
        backends_dir=backends_dir,
        env=_server_env(),
    )


def _prepend_path(existing: str | None, *entries: Path) -> str:
    parts = [str(entry) for entry in entries]
    if existing:
        parts.append(existing)
    return os.pathsep.join(parts)


def _server_env() -> dict[str, str]:
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = _prepend_path(env.get("LD_LIBRARY_PATH"), _bundled_libraries_dir())
    # The Python backend stub embeds CPython and finds its site-packages through the `python3`
    # first on PATH: put this interpreter's environment there so models import what we installed.
    interpreter_bin = Path(sys.executable).parent
    env["PATH"] = _prepend_path(env.get("PATH"), interpreter_bin)
    env.setdefault("VIRTUAL_ENV", sys.prefix)
    return env


def perf_analyzer_path() -> Path:
    path = Path(sys.executable).parent / "perf_analyzer"
    if not path.is_file():
        raise RuntimeNotInstalledError(
            f"perf_analyzer not found at {path}: it ships in the tritonclient 2.51.0 wheel; "
            "run `make setup`"
        )
    return path


def perf_analyzer_env() -> dict[str, str]:
    """Environment in which the 2.51 perf_analyzer binary starts on Debian 12.

    It links libcudart.so.12 even for CPU-only runs; the `nvidia-cuda-runtime-cu12` wheel has it.
    It also needs Debian's libb64-0d (`make system-deps`).
    """
    if ctypes.util.find_library("b64") is None:
        raise SystemPackageMissing("libb64 (Debian's libb64-0d), which perf_analyzer links,")
    env = dict(os.environ)
    cuda_runtime_lib = _package_dir("nvidia.cuda_runtime") / "lib"
    env["LD_LIBRARY_PATH"] = _prepend_path(env.get("LD_LIBRARY_PATH"), cuda_runtime_lib)
    return env
