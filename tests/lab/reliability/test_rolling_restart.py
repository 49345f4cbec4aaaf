"""The manifests' stop arithmetic that a rolling restart relies on.

The rollout itself under load, with the shipped preStop drain and without it (the control), runs
on the real control plane: tests/e2e/test_rolling_update.py. The local replay behind nginx
(lab.reliability.scenarios.rolling_restart) stays in `make reliability` for what-ifs.
"""

from __future__ import annotations


def test_manifests_leave_time_for_drain_and_exit(lifecycle):
    # What a rolling restart relies on: the hook's deadline plus Triton's exit timeout fit in
    # the grace period, and the rollout never removes a replica before its successor is ready.
    assert lifecycle.propagation_s < lifecycle.drain_deadline_s
    assert lifecycle.drain_deadline_s + lifecycle.exit_timeout_s < lifecycle.termination_grace_s
    assert lifecycle.max_unavailable == 0 and lifecycle.max_surge not in (0, "0%")
