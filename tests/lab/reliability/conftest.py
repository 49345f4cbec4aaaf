"""Fixtures of the lab's fault scenarios: the nginx that stands in for the edge."""

from __future__ import annotations

import pytest
from lab.reliability.nginx import nginx_binary


@pytest.fixture(scope="session")
def nginx() -> str:
    return nginx_binary()  # missing: the test skips (root conftest), or fails in CI
