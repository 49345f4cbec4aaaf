"""The administrative APIs answer only with the admin header, as the manifests configure Triton.

The server runs with the Deployment's own --http-restricted-api / --grpc-restricted-protocol
flags (read from the rendered overlay, a test key in place of the Secret). Over gRPC, Triton
2.51 expects the header under the name `triton-grpc-protocol-<key>`.

On the real control plane, tests/e2e/test_publisher_rbac.py sees the same lock over HTTP through
the pod proxy; this local server covers gRPC and each restricted API.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
import tritonclient.grpc as grpcclient
from inference_tools.exposure import ADMIN_API_CATEGORIES
from inference_tools.local_server import LocalTritonServer
from lab.reliability.local_replicas import TEST_ADMIN_KEY, replica_flags
from tritonclient.utils import InferenceServerException

from tests.clients import MODEL, embed

pytestmark = pytest.mark.server

HEADER = "x-triton-admin-key"
GRPC_HEADER = f"triton-grpc-protocol-{HEADER}"
RESTRICTED_CATEGORIES = set(ADMIN_API_CATEGORIES)
ABSENT_MODEL = "no_such_model"

# One call per restricted category, over HTTP: (category, method, path).
HTTP_ADMIN_CALLS = [
    ("model-repository", "POST", "/v2/repository/index"),
    # A model the repository lacks: the server keeps serving MODEL for the calls that follow.
    ("model-repository", "POST", f"/v2/repository/models/{ABSENT_MODEL}/unload"),
    ("model-config", "GET", f"/v2/models/{MODEL}/config"),
    ("shared-memory", "GET", "/v2/systemsharedmemory/status"),
    ("shared-memory", "GET", "/v2/cudasharedmemory/status"),
    ("statistics", "GET", "/v2/models/stats"),
    ("trace", "GET", "/v2/trace/setting"),
    ("logging", "GET", "/v2/logging"),
]
GRPC_ADMIN_CALLS = {
    "model-repository": lambda c, h: c.get_model_repository_index(headers=h),
    "model-config": lambda c, h: c.get_model_config(MODEL, headers=h),
    "shared-memory": lambda c, h: c.get_system_shared_memory_status(headers=h),
    "statistics": lambda c, h: c.get_inference_statistics(headers=h),
    "trace": lambda c, h: c.get_trace_settings(headers=h),
    "logging": lambda c, h: c.get_log_settings(headers=h),
}


@pytest.fixture(scope="module")
def locked_server(model_repository, lifecycle) -> Iterator[LocalTritonServer]:
    server = LocalTritonServer(model_repository, extra_args=replica_flags(lifecycle))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def http_status(server, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://{server.http_url}{path}",
        method=method,
        data=b"{}" if method == "POST" else None,
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_manifests_restrict_every_admin_category(lifecycle):
    for flag in lifecycle.restricted_api_args(TEST_ADMIN_KEY):
        categories, header = flag.split("=", 1)[1].split(":", 1)
        assert set(categories.split(",")) == RESTRICTED_CATEGORIES, flag
        assert header == f"{HEADER}={TEST_ADMIN_KEY}", flag
    assert len(lifecycle.restricted_api_args(TEST_ADMIN_KEY)) == 2


@pytest.mark.parametrize(("category", "method", "path"), HTTP_ADMIN_CALLS)
def test_http_admin_call_needs_the_header(locked_server, category, method, path):
    status, body = http_status(locked_server, method, path, {})
    assert status == 403 and HEADER in body, (category, status, body)
    status, _ = http_status(locked_server, method, path, {HEADER: "wrong"})
    assert status == 403, category
    status, body = http_status(locked_server, method, path, {HEADER: TEST_ADMIN_KEY})
    # Let through: answered by the API itself (the unload of a model the repository lacks is
    # refused for its own reason).
    assert status != 403, (category, status, body)
    if not path.endswith("/unload"):
        assert status == 200, (category, status, body)


@pytest.mark.parametrize("category", sorted(GRPC_ADMIN_CALLS))
def test_grpc_admin_call_needs_the_header(locked_server, category):
    call = GRPC_ADMIN_CALLS[category]
    client = grpcclient.InferenceServerClient(locked_server.grpc_url)
    try:
        for headers in (None, {GRPC_HEADER: "wrong"}, {HEADER: TEST_ADMIN_KEY}):
            with pytest.raises(InferenceServerException, match="restricted") as refused:
                call(client, headers)
            # Triton answers UNAVAILABLE here, a code clients may retry: they get the same.
            assert refused.value.status() == "StatusCode.UNAVAILABLE"
        call(client, {GRPC_HEADER: TEST_ADMIN_KEY})
    finally:
        client.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_inference_health_and_metadata_stay_open(locked_server, protocol):
    from tests.clients import client_for

    client = client_for(locked_server, protocol)
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready(MODEL)
        assert client.get_model_metadata(MODEL)
        (vector,) = embed(client, protocol, ["no header needed to embed"])
        assert vector.shape == (384,)
    finally:
        client.close()
