"""Rolling restart behind nginx, replaying the manifests' preStop, probes and grace period."""

from __future__ import annotations

import pytest
from lab.reliability.scenarios.rolling_restart import scenario as rolling_restart

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_manifests_leave_time_for_drain_and_exit(lifecycle):
    # What the replay below relies on: the hook's deadline plus Triton's exit timeout fit in
    # the grace period, and the rollout never removes a replica before its successor is ready.
    assert lifecycle.propagation_s < lifecycle.drain_deadline_s
    assert lifecycle.drain_deadline_s + lifecycle.exit_timeout_s < lifecycle.termination_grace_s
    assert lifecycle.max_unavailable == 0 and lifecycle.max_surge not in (0, "0%")


def test_rolling_restart_under_load_loses_no_request(model_repository, lifecycle, nginx):
    result = rolling_restart.run(model_repository, lifecycle)
    assert result.requests_sent > 200, result.details
    assert result.requests_failed == 0, result.details["failures"]
    for termination in result.details["terminations"]:
        assert termination["drain"]["idle"], termination
        # The hook waited the manifest's propagation delay before calling the replica idle.
        assert termination["pre_stop_s"] >= lifecycle.propagation_s
        assert not termination["killed"], termination
        assert termination["pre_stop_s"] + termination["exit_s"] < lifecycle.termination_grace_s
    assert result.passed


def test_the_same_replay_without_the_drain_fails_requests(model_repository, lifecycle, nginx):
    """The control: without the preStop hook, requests still routed to the stopping replica
    fail, so the test above would notice a missing or broken drain."""
    result = rolling_restart.run(model_repository, lifecycle, replacements=1, pre_stop=False)
    assert result.requests_failed > 0, result.details
    assert result.passed
