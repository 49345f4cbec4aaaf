"""A tritonserver's process tree, read from /proc: its Python-backend stubs and its memory."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")
STUB_NAME = "triton_python_backend_stub"


def children(pid: int) -> list[int]:
    found = []
    for status in PROC.glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
        except OSError:  # the process ended while we looked
            continue
        if fields.get("PPid", "").strip() == str(pid):
            found.append(int(status.parent.name))
    return sorted(found)


def command_line(pid: int) -> list[str]:
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def stub_pid(server_pid: int, model: str) -> int:
    """The Python-backend stub process serving `model` (its first argument is the model file)."""
    for pid in children(server_pid):
        command = command_line(pid)
        if command and command[0].endswith(STUB_NAME) and f"/{model}/" in command[1]:
            return pid
    raise LookupError(f"no Python-backend stub for {model!r} under process {server_pid}")


def rss_bytes(pid: int) -> int:
    """Resident memory of one process (0 once it has gone)."""
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """The server plus its stub processes: the memory a container limit would count."""
    return rss_bytes(pid) + sum(rss_bytes(child) for child in children(pid))
