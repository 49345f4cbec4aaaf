"""How many CPUs this process may use: the container's CPU limit where one is set.

`os.cpu_count()` is the node's CPU count. In a pod with `resources.limits.cpu: 2` on a 64-core
node the kernel's CFS quota allows two CPUs' worth of time, and anything sized from the node's
count (thread pools, instance counts) oversubscribes the pod and is throttled.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by the CFS quota (cgroup v2 `cpu.max`, or v1 `cpu.cfs_quota_us`), or None."""
    v2 = root / "cpu.max"
    try:
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        for v1 in (root / "cpu", root / "cpu,cpuacct"):
            quota_file = v1 / "cpu.cfs_quota_us"
            if quota_file.is_file():
                quota_us = int(quota_file.read_text())
                period_us = int((v1 / "cpu.cfs_period_us").read_text())
                return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def available_cpus(root: Path = CGROUP_ROOT) -> float:
    """The CPUs this process can use: its affinity set, capped by the cgroup's CPU limit."""
    cpus: float = len(os.sched_getaffinity(0))
    limit = cgroup_cpu_limit(root)
    if limit is not None:
        cpus = min(cpus, limit)
    return cpus


def whole_cpus(cpus: float) -> int:
    """A fractional limit rounded up (1.5 CPUs can keep two threads busy part of the time)."""
    return max(1, math.ceil(cpus - 1e-9))
