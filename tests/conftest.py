"""Session-wide fixtures: the built model repository and one real Triton serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from inference_tools.local_server import LocalTritonServer
from inference_tools.paths import MODEL_REPOSITORY


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """model_repository/ with its generated artefacts (ONNX encoder, tokenizer.json, digits)."""
    from inference_tools.repository_builds import build_repository_models

    build_repository_models(MODEL_REPOSITORY)
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
