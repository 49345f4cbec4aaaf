"""Where the project keeps things, relative to the checkout."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MODEL_REPOSITORY = PROJECT_ROOT / "model_repository"
KUSTOMIZE_DIR = PROJECT_ROOT / "kustomize"


def work_dir() -> Path:
    """Project-local scratch folder for the prepared Triton runtime, logs and reports.

    `INFERENCE_TOOLS_WORK_DIR` moves it (for example to a tmpfs); it is never inside site-packages.
    """
    return Path(os.environ.get("INFERENCE_TOOLS_WORK_DIR", PROJECT_ROOT / ".work"))
