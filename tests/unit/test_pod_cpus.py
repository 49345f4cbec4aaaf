"""CPUs from the cgroup CPU limit, as a container sees them."""

from pathlib import Path

import pytest
from inference_tools.pod_cpus import available_cpus, cgroup_cpu_limit, whole_cpus


def test_cgroup_v2_quota_and_no_limit(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("250000 100000\n")
    assert cgroup_cpu_limit(tmp_path) == 2.5
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_cgroup_v1_quota_and_no_limit(tmp_path: Path) -> None:
    cpu = tmp_path / "cpu"
    cpu.mkdir()
    (cpu / "cpu.cfs_quota_us").write_text("400000\n")
    (cpu / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_limit(tmp_path) == 4.0
    (cpu / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_limit(tmp_path) is None


def test_limit_caps_the_affinity_set(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("50000 100000\n")
    assert available_cpus(tmp_path) == 0.5
    assert available_cpus(tmp_path / "absent") >= 1


@pytest.mark.parametrize(("cpus", "whole"), [(0.5, 1), (1.0, 1), (1.5, 2), (16.0, 16)])
def test_whole_cpus_rounds_up(cpus: float, whole: int) -> None:
    assert whole_cpus(cpus) == whole
