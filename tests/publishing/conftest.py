"""A real Triton in explicit model-control mode reading a folder store, its repository API
restricted behind an admin header as in the cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from inference_tools.local_server import LocalTritonServer
from inference_tools.publishing.rollout import AdminAccess
from pod_hooks.model_roles import ADMIN_HEADER

from tests.publishing.servers import ADMIN_KEY, explicit_mode_args


@pytest.fixture(scope="module")
def admin() -> AdminAccess:
    return AdminAccess(ADMIN_HEADER, ADMIN_KEY)


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store")
    return path


@pytest.fixture(scope="module")
def store_server(store_dir: Path) -> Iterator[LocalTritonServer]:
    server = LocalTritonServer(store_dir, extra_args=explicit_mode_args())
    server.start(timeout_s=180)
    try:
        yield server
    finally:
        server.stop()
