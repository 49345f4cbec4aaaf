"""One server stopped while requests are inside it: drained first, every request succeeds."""

from __future__ import annotations

import pytest
from inference_tools.reliability import sigterm_in_flight

pytestmark = pytest.mark.server


def test_drain_then_sigterm_completes_every_accepted_request(model_repository, lifecycle):
    result = sigterm_in_flight.run(model_repository, lifecycle)
    details = result.details
    assert details["in_flight_at_stop"] > 0, "nothing was in flight: the test proves nothing"
    assert result.requests_failed == 0, details["failures"]
    assert details["stopped_s"] < lifecycle.drain_deadline_s + lifecycle.exit_timeout_s
    assert details["exit_status"] == 0


def test_bare_sigterm_fails_the_ensemble_requests_in_flight(model_repository, lifecycle):
    """Triton 2.51's own behaviour, the reason the drain exists (see docs/reliability.md)."""
    result = sigterm_in_flight.run(model_repository, lifecycle, drain=False, protocols=("grpc",))
    assert result.requests_failed > 0, result.details
    assert set(result.details["by_status"]) <= {"ok", "UNAVAILABLE"}
