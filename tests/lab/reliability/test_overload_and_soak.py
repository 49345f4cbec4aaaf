"""Demand far above capacity is refused fast; steady load for a minute neither fails nor leaks."""

from __future__ import annotations

import pytest
from lab.reliability.scenarios.overload import scenario as overload
from lab.reliability.scenarios.soak import scenario as soak

pytestmark = pytest.mark.server


def test_queue_policies_are_set_on_every_composing_model(model_repository):
    timeouts = overload.queue_timeouts_s(model_repository)
    # tokenizer and minilm refuse requests that waited too long.
    assert timeouts["tokenizer"] > 0 and timeouts["minilm"] > 0, timeouts


def test_overload_is_refused_fast_and_accepted_latency_stays_bounded(model_repository):
    result = overload.run(model_repository, duration_s=12.0)
    details = result.details
    assert details["other_errors"] == [], details
    assert details["queue_full"] > 0, "the load never filled a queue: not an overload"
    assert details["http_refused_503"] > 0, details
    assert all("maximum queue size" in m or "timeout" in m for m in details["refusal_messages"])
    assert details["queue_full_median_s"] <= details["fast_refusal_bound_s"], details
    assert details["accepted"] > 0
    assert details["accepted_max_s"] <= details["latency_bound_s"], details
    assert result.passed


@pytest.mark.slow
def test_one_minute_soak_loses_nothing_and_memory_levels_off(model_repository):
    result = soak.run(model_repository, duration_s=60.0)
    assert result.requests_sent > 100
    assert result.requests_failed == 0, result.details["failures"]
    assert result.details["growth_bytes"] <= result.details["allowed_growth_bytes"], result.details
