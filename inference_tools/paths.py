"""Where the commands look by default: folders relative to the current directory.

The package installs like any other (a wheel has no checkout to look around in), so every
command takes its folders as options; these defaults fit a command run from the repository's
root, as the Makefile runs them, or from any folder laid out the same way.
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_REPOSITORY = Path("model_repository")
KUSTOMIZE_DIR = Path("kustomize")
RESULTS_DIR = Path("perf") / "results"


def work_dir() -> Path:
    """Scratch folder for the prepared Triton runtime, logs and reports: `.work/` here.

    `INFERENCE_TOOLS_WORK_DIR` moves it (for example to a tmpfs); it is never inside site-packages.
    """
    return Path(os.environ.get("INFERENCE_TOOLS_WORK_DIR", ".work")).resolve()
