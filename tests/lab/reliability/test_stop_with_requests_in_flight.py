"""One server stopped while requests are inside it: drained first, every request succeeds."""

from __future__ import annotations

import pytest
from lab.reliability.scenarios.drain_cases import scenario as drain_cases
from lab.reliability.scenarios.sigterm_in_flight import scenario as sigterm_in_flight

pytestmark = pytest.mark.server


def test_drain_then_sigterm_completes_every_accepted_request(model_repository, lifecycle):
    result = sigterm_in_flight.run(model_repository, lifecycle)
    details = result.details
    assert details["in_flight_at_stop"] > 0, "nothing was in flight: the test proves nothing"
    assert result.requests_failed == 0, details["failures"]
    assert details["stopped_s"] < lifecycle.drain_deadline_s + lifecycle.exit_timeout_s
    assert details["exit_status"] == 0


def test_bare_sigterm_fails_the_ensemble_requests_in_flight(lifecycle):
    """Triton 2.51's own behaviour, the reason the drain exists (see docs/reliability.md): a
    request inside an ensemble's first step when SIGTERM comes is refused its next step. Shown
    on the slow two-step ensemble, where the request is in the first step for certain (the
    served ensemble has two steps too, so a request already in the encoder would pass)."""
    result = drain_cases.long_execution(
        drain_cases.SLOW_MODEL_REPOSITORY, lifecycle, model="slow_pipeline", requests=1, drain=False
    )
    assert result.details["in_flight_at_stop"] > 0
    assert result.requests_failed > 0, result.details
    assert set(result.details["by_status"]) <= {"ok", "UNAVAILABLE"}
