"""The drain against long executions and requests arriving while it runs (real tritonserver).

The drain unloads the models and waits until Triton has released them: exact for a batch that
executes without CPU, for the requests queued behind it, and for an ensemble's steps.
"""

from __future__ import annotations

import logging

import pytest
from lab.reliability.scenarios.drain_cases import scenario as drain_cases

pytestmark = pytest.mark.server

SLOW_MODEL_REPOSITORY = drain_cases.SLOW_MODEL_REPOSITORY


def assert_every_request_answered(result) -> None:
    details = result.details
    assert details["in_flight_at_stop"] > 0, "nothing was in flight: the test proves nothing"
    assert result.requests_failed == 0, details["failures"]
    assert details["exit_status"] == 0
    assert details["drain_idle"], details


def test_a_plain_model_batch_executing_and_queued_requests_are_answered_before_exit(lifecycle):
    result = drain_cases.long_execution(SLOW_MODEL_REPOSITORY, lifecycle)
    assert_every_request_answered(result)
    assert result.details["drain_mechanism"] == "unload"
    # One batch executing, one queued behind it: the stop had to wait for both.
    assert result.details["stopped_s"] >= drain_cases.SLEEPER_EXECUTE_S


def test_an_ensemble_step_executing_without_cpu_or_gpu_is_answered_before_exit(lifecycle):
    result = drain_cases.long_execution(SLOW_MODEL_REPOSITORY, lifecycle, model="slow_pipeline")
    assert_every_request_answered(result)
    assert result.details["drain_mechanism"] == "unload"


def test_a_server_that_refuses_unloads_falls_back_to_watching_for_quiet(lifecycle, caplog):
    caplog.set_level(logging.INFO, logger="inference_tools.local_server")
    # The plain model: Triton itself answers its executing batch after SIGTERM, so this case
    # passes on the fallback too; what is under test is that the fallback is taken and said.
    result = drain_cases.long_execution(
        SLOW_MODEL_REPOSITORY, lifecycle, requests=2, model_control_mode="none"
    )
    assert result.details["drain_mechanism"] == "quiet"
    assert result.requests_failed == 0, result.details["failures"]
    assert result.details["exit_status"] == 0
    refusals = [
        r.getMessage() for r in caplog.records if "exact drain impossible" in r.getMessage()
    ]
    assert refusals, [r.getMessage() for r in caplog.records]
    assert "--model-control-mode=explicit --load-model=*" in refusals[0]
    assert result.details["stopped_s"] < lifecycle.drain_deadline_s + lifecycle.exit_timeout_s


def test_requests_arriving_during_the_drain_are_answered_before_it_returns(
    model_repository, lifecycle
):
    result = drain_cases.arrivals_during_drain(model_repository, lifecycle)
    details = result.details
    assert result.requests_sent > 0
    assert result.requests_failed == 0, details["failures"]
    assert details["drain_idle"]
    assert details["drain_mechanism"] == "unload"
    assert details["unfinished_at_drain_end"] == 0
    assert details["exit_status"] == 0
