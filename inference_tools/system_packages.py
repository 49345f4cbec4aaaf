"""Programs and libraries that come from Debian packages, not from pip: Prometheus and promtool,
nginx, Node.js (the CRD validation), libb64 (perf_analyzer). `make system-deps` installs them."""

from __future__ import annotations

INSTALL_COMMAND = "sudo make system-deps"


class SystemPackageMissing(RuntimeError):
    """A program or library from a Debian package is not installed."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is not installed: run `{INSTALL_COMMAND}` (Debian packages)")
