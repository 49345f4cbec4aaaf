"""`inference-tools serve` stopped the ways people stop it, long requests inside: none lost."""

from __future__ import annotations

import pytest
from lab.reliability.scenarios.local_stop import scenario as local_stop

pytestmark = pytest.mark.server


@pytest.mark.parametrize("stop", sorted(local_stop.STOPS))
def test_every_local_stop_drains_before_triton_gets_the_signal(model_repository, stop):
    result = local_stop.run(model_repository, stop=stop)
    details = result.details
    assert details["in_flight_at_stop"] > 0, "nothing was in flight: the test proves nothing"
    assert result.requests_failed == 0, details["failures"]
    assert details["exit_status"] == 0, details["log"]
    assert details["stopped_s"] < local_stop.EXIT_BOUND_S
    assert details["stubs"], "no Python-backend stub was found: the orphan check proves nothing"
    assert details["orphans"] == []
