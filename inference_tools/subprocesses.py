"""Local servers run as child processes: waiting until they answer, stopping them, and using
them as context managers."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, Self

LOG = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
# Run in a fresh interpreter between fork and the server's exec: a preexec_fn would run Python in
# a forked copy of a threaded process (gRPC and ONNX Runtime threads), where a lock another thread
# held stays locked. The death signal survives exec; a parent that died before prctl is checked.
_DIE_WITH_PARENT = f"""\
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, int(sys.argv[1]), 0, 0, 0):
    sys.exit(f"prctl(PR_SET_PDEATHSIG): {{os.strerror(ctypes.get_errno())}}")
if os.getppid() != int(sys.argv[2]):
    sys.exit("the process that started this one has already exited")
os.execvp(sys.argv[3], sys.argv[3:])
"""


def dies_with_this_process(command: Sequence[str], death_signal: int = signal.SIGTERM) -> list[str]:
    """`command`, started so that it gets `death_signal` when the thread that starts it ends.

    A server started in a session of its own (so that a terminal's Ctrl-C reaches only us) is
    otherwise left running, ports and memory held, when we are killed outright (SIGKILL after a
    timeout, the OOM killer): Linux's parent-death signal ties it to us. Linux sends it when the
    starting *thread* exits: start such servers from a thread that outlives them (the main
    thread). The exec keeps the pid, so `Popen.pid` is the server's own.
    """
    return [
        sys.executable,
        "-I",
        "-S",
        "-c",
        _DIE_WITH_PARENT,
        str(int(death_signal)),
        str(os.getpid()),
        *command,
    ]


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
    started with `start_new_session=True`): a server's helpers must not outlive it, not even
    when the server itself has already died (a crashed tritonserver left its stubs running).
    """
    if process is None:
        return None
    if process.poll() is not None:
        if kill_group:
            _kill_what_is_left_of_group(process.pid)
        return process.returncode
    process.send_signal(stop_signal)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        LOG.warning(
            "%s did not exit %ss after %s; killing it",
            _program(process),
            timeout_s,
            signal.Signals(stop_signal).name,
        )
        if kill_group:
            os.killpg(process.pid, signal.SIGKILL)
        else:
            process.kill()
        return process.wait()


def _kill_what_is_left_of_group(group: int) -> None:
    # ProcessLookupError: the group is gone, nothing was left.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signal.SIGKILL)


def _program(process: subprocess.Popen[Any]) -> str:
    args = [process.args] if isinstance(process.args, str | bytes) else list(process.args)
    if _DIE_WITH_PARENT in args:  # the server's own command follows the wrapper's arguments
        args = args[args.index(_DIE_WITH_PARENT) + 3 :]
    return str(args[0])


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
