"""Local servers run as child processes: waiting until they answer, stopping them, and using
them as context managers."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

LOG = logging.getLogger(__name__)


def wait_until_ready(
    ready: Callable[[], bool],
    process: subprocess.Popen[Any] | None,
    timeout_s: float,
    *,
    interval_s: float = 0.25,
) -> str | None:
    """Poll `ready()` until it holds, and return None; otherwise say why it never did: `exited
    with status N` when `process` ended first, `not ready after Ns` at the deadline.

    Each caller raises its own error with that reason and the log that explains it.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        if process is not None and process.poll() is not None:
            return f"exited with status {process.returncode}"
        if ready():
            return None
        if time.monotonic() >= deadline:
            return f"not ready after {timeout_s:g}s"
        time.sleep(interval_s)


def answers(url: str, timeout_s: float = 2.0) -> bool:
    """Whether a GET of `url` answers 200 (a refused connection or an error status: no)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def stop_process(
    process: subprocess.Popen[Any] | None,
    timeout_s: float,
    *,
    stop_signal: int = signal.SIGTERM,
    kill_group: bool = False,
) -> int | None:
    """Send `stop_signal`, wait up to `timeout_s`, then SIGKILL. Returns the exit status.

    `kill_group` kills the child's whole process group at the end (the child must have been
    started with `start_new_session=True`): a server's helpers must not outlive it.
    """
    if process is None:
        return None
    if process.poll() is not None:
        return process.returncode
    process.send_signal(stop_signal)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        LOG.warning(
            "%s did not exit %ss after %s; killing it",
            process.args if isinstance(process.args, str) else process.args[0],
            timeout_s,
            signal.Signals(stop_signal).name,
        )
        if kill_group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        return process.wait()


class ManagedService:
    """A `start()`/`stop()` service that is also a context manager."""

    def start(self) -> Any:
        raise NotImplementedError

    def stop(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop_on_exit(clean=exc_type is None)

    def stop_on_exit(self, *, clean: bool) -> None:
        """How the `with` block stops the service; `clean`: the block did not raise."""
        self.stop()
