"""The `make reliability` hostile-input rows, in a short version: no replica lost behind the edge,
the replica lost without it, and loopers of the largest request beside a one-text client losing
no replica (what that client gets, served or refused after the queue timeout, and its latency are
the lab run's to report: docs/security.md, cost per client).

Behind nginx, not tests/e2e: `make cluster` runs no Gateway or Ingress controller.
"""

from __future__ import annotations

import pytest
from lab.reliability.scenarios.hostile_input import max_size_loopers
from lab.reliability.scenarios.hostile_input import scenario as hostile_input

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_hostile_input_behind_the_edge_loses_no_replica(model_repository, lifecycle, nginx):
    result = hostile_input.run(model_repository, lifecycle, rounds=1, phase_s=2.0)
    assert result.details["replicas_lost"] == 0
    assert result.details["valid_failed"] == 0, result.details["failure_summary"]
    assert set(result.details["answers"]) <= hostile_input.REFUSALS, result.details["answers"]
    assert result.passed and "replicas lost: 0" in result.row()["verdict"]


def test_the_same_body_without_the_edge_loses_the_replica(model_repository, lifecycle, nginx):
    result = hostile_input.run(model_repository, lifecycle, edge_in_front=False)
    assert result.details["replicas_lost"] == 1
    assert result.passed


def test_largest_request_loopers_lose_no_replica_and_their_memory_comes_back(
    model_repository, lifecycle, nginx
):
    result = max_size_loopers.run(model_repository, lifecycle, phase_s=5.0, settle_s=1.0)
    details = result.details
    assert details["replicas_lost"] == 0
    assert details["looper_sent"] > 0 and details["small_served"] + details["small_failed"] > 0
    assert 0 < details["rss_before_bytes"] <= details["rss_peak_bytes"]
    assert details["rss_after_bytes"] > 0
