"""Session-wide fixtures: the built model repository and one real Triton serving it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from inference_tools.local_server import LocalTritonServer

from tests.checkout import MODEL_REPOSITORY
from tests.clients import client_for


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """model_repository/ with its generated artefacts (ONNX encoder, tokenizer.json) in place."""
    from inference_tools.model_artifacts import build_model_artifacts

    build_model_artifacts(MODEL_REPOSITORY)
    return MODEL_REPOSITORY


@pytest.fixture(scope="session")
def tokenizer_json(model_repository: Path) -> Path:
    return model_repository / "tokenizer" / "1" / "tokenizer.json"


@pytest.fixture(scope="session")
def triton_server(model_repository: Path) -> Iterator[LocalTritonServer]:
    """One real tritonserver for the whole session, on free loopback ports.

    It is stopped at the end of the session whatever the tests did; its log stays in .work/logs.
    """
    server = LocalTritonServer(model_repository)
    server.start(timeout_s=300)
    try:
        yield server
    finally:
        server.stop()


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
