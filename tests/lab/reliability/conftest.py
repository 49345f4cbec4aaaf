"""Fixtures of the fault tests: the pod lifecycle the manifests describe, a scratch work dir."""

from __future__ import annotations

import pytest
from lab.reliability.nginx import nginx_binary
from lab.reliability.pod_lifecycle import PodLifecycle, pod_lifecycle

from tests.checkout import KUSTOMIZE_DIR


@pytest.fixture(scope="session")
def lifecycle() -> PodLifecycle:
    """Shutdown and probe timings read from `kubectl kustomize kustomize/overlays/cpu`."""
    return pod_lifecycle(kustomize_dir=KUSTOMIZE_DIR)


@pytest.fixture(scope="session")
def nginx() -> str:
    return nginx_binary()  # missing: the test skips (root conftest), or fails in CI
