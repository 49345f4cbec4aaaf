"""Host processes of the cluster: started detached with a pid file, stopped only if the pid
still runs the command we started (a recycled pid is never signalled)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path


def start_detached(command: list[str], pid_file: Path, log_file: Path, **popen: object) -> int:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Its own session: a Ctrl-C in the terminal that ran `make cluster` must not stop it.
            start_new_session=True,
            **popen,  # type: ignore[arg-type]
        )
    pid_file.write_text(f"{process.pid}\n{command[0]}\n")
    # Until the child has exec'd, /proc shows this interpreter's command line; wait for the
    # switch so that running_pid() recognises the process from the start.
    deadline = time.monotonic() + 5.0
    while _cmdline(process.pid)[:1] != [command[0]] and process.poll() is None:
        if time.monotonic() > deadline:
            break
        time.sleep(0.01)
    return process.pid


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def command_lines() -> list[list[str]]:
    """Every process's command line (those that can be read)."""
    return [_cmdline(int(entry.name)) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def running_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process is alive and still the one started."""
    try:
        pid_text, executable = pid_file.read_text().splitlines()[:2]
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    cmdline = _cmdline(pid)
    if not cmdline or cmdline[0] != executable:
        return None
    return pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of ours (started by this very process) counts as gone.
    status = Path(f"/proc/{pid}/stat")
    try:
        return status.read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop(pid_file: Path, grace_seconds: float) -> None:
    """SIGTERM, then SIGKILL after `grace_seconds`; the pid file goes either way."""
    pid = running_pid(pid_file)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace_seconds
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.05)
    pid_file.unlink(missing_ok=True)


def answers(url: str) -> bool:
    """Whether `url` answers 200 within 2 s (a readiness endpoint of a host process)."""
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def wait_until(
    check: Callable[[], bool],
    watched: Mapping[Path, Path],
    waiting_for: str,
    log_file: Path,
    timeout_seconds: float,
    interval_seconds: float,
) -> None:
    """Poll `check` until it holds; fail at once where a watched process (pid file -> its log)
    has exited, and after `timeout_seconds` naming `waiting_for` and `log_file`."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        for pid_file, log in watched.items():
            if running_pid(pid_file) is None:
                raise RuntimeError(f"{pid_file.stem} exited; see {log}")
        if check():
            return
        time.sleep(interval_seconds)
    raise TimeoutError(f"{waiting_for} did not answer; see {log_file}")
