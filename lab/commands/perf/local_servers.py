"""What `perf run` and `perf tune` do before they start servers on this machine."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from inference_tools.repository_builds import build_if_default_repository


def prepare_local_servers(model_repository: Path) -> None:
    """Build the project's model artefacts if they are what will be served, and make SIGTERM
    unwind (SystemExit) so that a stopped run still stops the servers it started."""
    build_if_default_repository(model_repository)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
