"""Cluster Service names for host processes: a private mount namespace whose /etc/hosts maps
`<service>.<namespace>.svc` names to the Services' ClusterIPs.

`make cluster` runs no cluster DNS (pods reach each other by address), while programs written
for a cluster (KEDA's triggers, its metrics server's gRPC client) name Services by DNS. A host
process started with `private_hosts` resolves those names from its own /etc/hosts (Go's resolver
reads the file first, as `hosts: files dns` says), and reaches the ClusterIP through kube-proxy's
rules like any client on the node; the machine's /etc/hosts is never touched.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Mapping
from pathlib import Path

# <sched.h> and <sys/mount.h>
CLONE_NEWNS = 0x00020000
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
SYSTEM_HOSTS = Path("/etc/hosts")


def hosts_text(base: str, names: Mapping[str, str]) -> str:
    """The machine's hosts file with one line per cluster name after it (name -> address)."""
    lines = [base.rstrip("\n"), "# Cluster Services (kubecluster.host_names)"]
    lines += [f"{address}\t{name}" for name, address in sorted(names.items())]
    return "\n".join(lines) + "\n"


def write_hosts(path: Path, names: Mapping[str, str]) -> Path:
    path.write_text(hosts_text(SYSTEM_HOSTS.read_text(), names))
    return path


def _check(result: int, what: str) -> None:
    if result != 0:
        error = ctypes.get_errno()
        raise OSError(error, f"{what}: {os.strerror(error)}")


def private_hosts(hosts_file: Path) -> Callable[[], None]:
    """A `preexec_fn` for Popen: the child gets its own mount namespace (no propagation back to
    the machine's) with `hosts_file` bound over /etc/hosts, then execs the program as usual."""
    source, target = os.fsencode(hosts_file), os.fsencode(SYSTEM_HOSTS)

    def enter() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        _check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
        # Private all the way down, so that the bind below stays in this namespace.
        _check(libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None), "make / rprivate")
        _check(libc.mount(source, target, None, MS_BIND, None), "mount --bind hosts")

    return enter
