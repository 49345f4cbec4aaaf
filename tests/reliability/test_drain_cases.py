"""The drain against long executions and requests arriving while it runs (real tritonserver)."""

from __future__ import annotations

import pytest
from inference_tools.reliability import drain_cases

pytestmark = pytest.mark.server

SLOW_MODEL_REPOSITORY = drain_cases.SLOW_MODEL_REPOSITORY


def test_a_plain_model_batch_executing_without_cpu_is_answered_before_exit(lifecycle):
    result = drain_cases.long_execution(SLOW_MODEL_REPOSITORY, lifecycle)
    details = result.details
    assert details["in_flight_at_stop"] > 0, "nothing was in flight: the test proves nothing"
    assert result.requests_failed == 0, details["failures"]
    assert details["exit_status"] == 0


def test_limit_an_ensemble_step_executing_without_cpu_or_gpu_is_invisible(lifecycle):
    """The limit docs/reliability.md states: Triton 2.51 exports no count of executing requests,
    and a step that sleeps leaves no CPU or GPU trace. When this fails, the drain or Triton has
    learnt to see it: update the docs and turn this into a zero-failure test."""
    # One request: several could reach the first step apart and wait there, visibly pending.
    result = drain_cases.long_execution(
        SLOW_MODEL_REPOSITORY, lifecycle, model="slow_pipeline", requests=1
    )
    assert result.details["in_flight_at_stop"] > 0
    assert result.requests_failed > 0, result.details
    assert set(result.details["by_status"]) <= {"ok", "UNAVAILABLE"}


def test_requests_arriving_during_the_drain_are_answered_before_it_returns(
    model_repository, lifecycle
):
    result = drain_cases.arrivals_during_drain(model_repository, lifecycle)
    details = result.details
    assert result.requests_sent > 0
    assert result.requests_failed == 0, details["failures"]
    assert details["drain_idle"]
    assert details["unfinished_at_drain_end"] == 0
    assert details["exit_status"] == 0
