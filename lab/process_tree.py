"""The processes under a parent, read from /proc: what the lab's measurements attribute memory
and CPU time to (a Triton server and its backend stubs, a load generator, a baseline service)."""

from __future__ import annotations

import os
from pathlib import Path

# Triton's Python-based backends run each model instance in a stub process whose arguments
# name the instance ("<model>_<group>_<index>") at this position.
STUB_NAME = "triton_python_backend_stub"
STUB_INSTANCE_ARGUMENT = 8


def _parents() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            # The command name in parentheses may hold spaces: the fields follow its last ")".
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it, parents before their children."""
    children = _parents()
    found, pending = [], [pid]
    while pending:
        current = pending.pop(0)
        found.append(current)
        pending.extend(sorted(children.get(current, [])))
    return found


def rss_bytes(pids: list[int]) -> int:
    """Resident memory of the processes (those that have exited count nothing)."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except OSError:
            continue
    return total


def process_label(pid: int) -> str:
    """A name to attribute a process's work to: a Triton stub by the model it serves, any
    other process by its executable's name."""
    try:
        arguments = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return f"pid {pid}"
    return label_of(pid, [a.decode(errors="replace") for a in arguments if a])


def label_of(pid: int, arguments: list[str]) -> str:
    if not arguments:
        return f"pid {pid}"
    executable = Path(arguments[0]).name
    if executable == STUB_NAME and len(arguments) > STUB_INSTANCE_ARGUMENT:
        model = arguments[STUB_INSTANCE_ARGUMENT].rsplit("_", 2)[0]
        return f"{model} stub"
    if executable.startswith("python") and len(arguments) > 2 and arguments[1] == "-m":
        return arguments[2].rsplit(".", 1)[-1]
    return executable
