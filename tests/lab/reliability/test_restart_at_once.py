"""A server stopped after serving clients starts again at once on the same ports."""

from __future__ import annotations

import pytest
from inference_tools.local_server import port_in_use
from lab.reliability.scenarios.restart_at_once import scenario as restart_at_once

pytestmark = pytest.mark.server


def test_a_stopped_server_starts_again_at_once_on_its_ports(model_repository):
    result = restart_at_once.run(model_repository)
    details = result.details
    # The situation the old check refused: no listener, yet a plain bind fails because of the
    # connections the server just closed.
    assert details["time_wait_left"], "no TIME_WAIT left: the test proves nothing"
    assert details["plain_bind_refused"]
    assert details["first_exit"] == 0
    assert result.requests_failed == 0, details["failures"]


def test_a_port_something_listens_on_is_busy(triton_server):
    assert port_in_use("127.0.0.1", triton_server.http_port)
    assert port_in_use("127.0.0.1", triton_server.grpc_port)
