"""`make cluster` again while it runs reuses it; `make cluster-down` leaves no process, network
namespace, veth, route or address of the cluster behind. Runs last (conftest orders it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kubecluster import control_plane, network
from kubecluster.layout import ClusterLayout

from tests.checkout import CHECKOUT

pytestmark = pytest.mark.e2e


def driver(action: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(CHECKOUT / "tools" / "cluster"))
    return subprocess.run(
        [sys.executable, "-m", "kubecluster", action],
        capture_output=True, text=True, env=env, cwd=CHECKOUT, check=False,
    )  # fmt: skip


def cluster_processes(layout: ClusterLayout) -> list[str]:
    """Processes whose command line names the cluster's binaries or runner, or that run in one
    of its network namespaces."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(layout.root) in cmdline or "kubecluster.pod_runner" in cmdline:
            found.append(f"{proc.name}: {cmdline[:160]}")
    return found


def test_second_up_reuses_the_running_cluster(cluster: ClusterLayout) -> None:
    started = time.monotonic()
    result = driver("up")
    seconds = time.monotonic() - started
    print(f"\nsecond `make cluster` while one runs: {seconds:.1f} s: {result.stdout.strip()}")
    assert result.returncode == 0, result.stderr
    assert "reusing" in result.stdout


def test_cluster_down_leaves_nothing_behind(cluster: ClusterLayout) -> None:
    assert cluster_processes(cluster), "the check must see the running cluster first"
    started = time.monotonic()
    result = driver("down")
    seconds = time.monotonic() - started
    leftovers = network.leftovers()
    processes = cluster_processes(cluster)
    print(f"\n`make cluster-down`: {seconds:.1f} s; left: {leftovers}, processes: {processes}")
    assert result.returncode == 0, result.stderr
    assert processes == []
    assert leftovers == {"nft": [], "links": [], "netns": [], "routes": []}
    assert network.processes_in_namespaces() == []
    assert not control_plane.is_running(cluster)
