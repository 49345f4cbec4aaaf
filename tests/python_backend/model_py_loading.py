"""Loading repository model.py files the way Triton does, for unit tests."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType


def load_model_py(path: Path) -> ModuleType:
    """Import a repository model.py under a unique name (they are all called model.py)."""
    name = "model_py_" + "_".join(path.parts[-3:]).replace(".", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def triton_args(model_dir: Path, config: dict) -> dict[str, str]:
    """The `args` Triton passes to initialize(), for a model folder and its parsed config."""
    return {
        "model_config": json.dumps(config),
        "model_repository": str(model_dir),
        "model_version": "1",
        "model_name": config["name"],
    }
