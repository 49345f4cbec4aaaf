"""A killed Python-backend stub: Triton's health endpoints miss it, the canary probe does not.

tests/e2e/test_liveness.py does the same to a real pod on the real control plane (out of the
EndpointSlice, restarted by its liveness probe); what only this local replay checks: under load,
no request fails once the replica is out, and the control with Triton's health endpoints as
probes never takes it out.
"""

from __future__ import annotations

import pytest
from lab.reliability.scenarios.backend_crash import scenario as backend_crash

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_manifest_probes_take_the_replica_out_and_restart_it(model_repository, lifecycle, nginx):
    # The rendered Deployment's readiness and liveness must be the canary that catches this.
    assert lifecycle.readiness.canary and lifecycle.liveness.canary, lifecycle
    result = backend_crash.run(model_repository, lifecycle, canary=lifecycle.readiness.canary)
    details = result.details
    # Triton itself keeps saying ready: the failure is only visible to a real request.
    assert all(answer == "ready" for answer in details["triton_ready_answers"]), details
    assert result.requests_failed > 0
    # Out of the endpoints within the readiness probe's detection time, plus what one tick of
    # the prober may take on a loaded machine: each of its probes is bounded by its timeout.
    readiness, liveness = lifecycle.readiness, lifecycle.liveness
    tick_s = 2 * readiness.timeout_s + liveness.timeout_s
    assert details["removed_after_s"] <= readiness.detection_s + tick_s, details
    # After that, nothing fails beyond the requests already inside the broken replica.
    assert details["failures_after_removal"] == 0, details["failures"]
    assert details["restarted_after_s"] is not None, details
    assert result.passed


def test_triton_health_endpoints_as_probes_never_notice(model_repository, lifecycle, nginx):
    observe_s = lifecycle.readiness.detection_s + 5.0
    result = backend_crash.run(model_repository, lifecycle, canary=False, observe_s=observe_s)
    assert result.details["removed_after_s"] is None
    assert result.details["failures_after_removal"] > 0
    assert result.passed
