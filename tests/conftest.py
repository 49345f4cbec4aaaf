"""Fixtures every test folder shares: the built model repository, one real Triton serving it for
the whole session, clients to it, the pod lifecycle the manifests describe; and what happens
where a Debian package is missing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from inference_tools.local_server import LocalTritonServer
from inference_tools.system_packages import SystemPackageMissing
from lab.reliability.pod_lifecycle import PodLifecycle, pod_lifecycle

from tests.checkout import KUSTOMIZE_DIR, MODEL_REPOSITORY
from tests.clients import client_for


@pytest.fixture(scope="session")
def model_repository() -> Path:
    """model_repository/ with its generated artefacts (ONNX encoder, tokenizer.json, digits)."""
    from inference_tools.repository_builds import build_repository_models

    build_repository_models(MODEL_REPOSITORY)
    return MODEL_REPOSITORY


@pytest.fixture(scope="session")
def lifecycle() -> PodLifecycle:
    """Shutdown and probe timings read from `kubectl kustomize kustomize/overlays/cpu`."""
    return pod_lifecycle(kustomize_dir=KUSTOMIZE_DIR)


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
        server.stop(drain=True)


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


# Where a program from a Debian package (nginx, Prometheus, node, libb64) is missing, the tests
# that need it skip and say which command installs it (`make test` installs them itself where it
# runs as root or with sudo). In CI (.ci/run installs them first) a missing one is a failure.
def _skip_unless_ci(error: SystemPackageMissing) -> None:
    if os.environ.get("CI"):
        raise error
    pytest.skip(str(error))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except SystemPackageMissing as error:
        _skip_unless_ci(error)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    try:
        return (yield)
    except SystemPackageMissing as error:
        _skip_unless_ci(error)
