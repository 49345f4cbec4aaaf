"""The S3 store stops during a publish and is down at a server start (moto_server, Triton)."""

from __future__ import annotations

import pytest
from lab.reliability.scenarios.model_store import scenario as model_store

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_store_failures_change_nothing_served_and_fail_clearly():
    result = model_store.run()
    details = result.details
    assert details["publish_failed"], details
    # The publish gave up within its client timeouts instead of hanging.
    assert details["publish_failure_s"] < 60, details
    assert details["requests_failed"] == 0
    assert details["served_while_down"] == details["version_before"]
    assert details["rerun_version"] == str(int(details["version_before"]) + 1), details
    # A server started against a dead store exits by itself, naming the store.
    assert details["start_error"] is not None, details
    assert "Unable to create S3 filesystem client" in details["start_error"]
    assert details["start_failure_s"] < 120
    assert result.passed
