from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.server.helpers import client_for


@pytest.fixture
def connect(triton_server) -> Iterator[Callable[[str], Any]]:
    """`connect(protocol)` gives a client to the session's server, closed after the test."""
    clients: list[Any] = []

    def make(protocol: str) -> Any:
        client = client_for(triton_server, protocol)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
