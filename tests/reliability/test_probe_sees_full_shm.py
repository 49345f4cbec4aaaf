"""The readiness/liveness probe notices a full /dev/shm that Triton's health and a canary miss.

The server runs with the Deployment's Triton flags (the same shm-default/shm-growth sizes) in a
mount namespace of its own, with a test-sized tmpfs on /dev/shm (root: `unshare -m`). Refused
oversized requests grow the Python backend's shared-memory regions, which never shrink; once
/dev/shm is full, larger valid requests fail with 500 while `/v2/health/ready` and a one-text
canary still pass. The probe, with the manifest's `--shm-min-free-bytes`, fails.

Not in tests/e2e: filling a pod's /dev/shm needs a test-sized tmpfs the Deployment does not have.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
from collections.abc import Iterator

import pytest
from inference_tools.local_server import LocalTritonServer
from inference_tools.model_config import read_model_config
from lab.reliability.local_replicas import TEST_ADMIN_KEY, replica_flags
from lab.reliability.pod_lifecycle import PodLifecycle
from pod_hooks import health_probe

from tests.clients import MODEL

pytestmark = [pytest.mark.server, pytest.mark.slow]

# Room for the stubs' first regions (16 MiB each, four Python-based models locally) and a
# little growth: a few refused requests fill it.
SHM_SIZE = "160m"
OVERSIZED_TEXT = "x" * 30_000_000  # refused with 400 by the tokenizer, after Triton copied it


class PrivateShmServer(LocalTritonServer):
    """tritonserver in its own mount namespace, with a small tmpfs on /dev/shm."""

    def command(self, runtime) -> list[str]:
        mount = f'mount -t tmpfs -o size={SHM_SIZE} tmpfs /dev/shm && exec "$@"'
        unshare = ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh"]
        return [*unshare, *super().command(runtime)]

    @property
    def shm_path(self) -> str:
        # The server's /dev/shm, seen from outside its mount namespace.
        assert self.process is not None
        return f"/proc/{self.process.pid}/root/dev/shm"


def manifest_probe_option(lifecycle: PodLifecycle, name: str) -> int:
    """An option of the readiness probe's triton-probe command in the rendered Deployment."""
    from inference_tools.manifests.render import render

    from tests.checkout import KUSTOMIZE_DIR

    deployment = render(KUSTOMIZE_DIR / "overlays" / lifecycle.overlay).one("Deployment", "triton")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    for probe in ("readinessProbe", "livenessProbe"):
        command = container[probe]["exec"]["command"]
        values = [c.split("=", 1)[1] for c in command if c.startswith(f"{name}=")]
        assert len(values) == 1, (probe, command)
    return int(values[0])


@pytest.fixture(scope="module")
def server(model_repository, lifecycle) -> Iterator[PrivateShmServer]:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a private /dev/shm")
    server = PrivateShmServer(model_repository, extra_args=replica_flags(lifecycle))
    server.start(timeout_s=300)
    yield server
    server.stop()


def post_texts(server: LocalTritonServer, texts: list[str]) -> tuple[int, str]:
    # Triton's own port: a 30 MB body stops at the HTTP guard's 8 MiB cap (and at the edge's),
    # so this is what a client inside the pod's network namespace could still do.
    host, port = server.triton_http_url.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=120)
    tensor = {"name": "TEXT", "shape": [len(texts), 1], "datatype": "BYTES", "data": texts}
    try:
        connection.request(
            "POST",
            f"/v2/models/{MODEL}/infer",
            body=json.dumps({"inputs": [tensor]}).encode(),
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    finally:
        connection.close()


def test_probe_fails_when_refused_requests_have_filled_dev_shm(server, lifecycle, model_repository):
    min_free = manifest_probe_option(lifecycle, "--shm-min-free-bytes")
    assert f"--backend-config=python,shm-growth-byte-size={min_free}" in lifecycle.triton_args
    base_url = f"http://{server.http_url}"
    # The costliest request the tokenizer's token budget lets through: full-length texts.
    tokenizer = read_model_config(model_repository / "tokenizer" / "config.pbtxt")
    full_length = int(tokenizer.parameters["max_request_tokens"].string_value) // int(
        tokenizer.parameters["max_tokens"].string_value
    )
    largest_request = ["a valid sentence of a few words " * 40] * full_length

    def probe() -> health_probe.ProbeResult:
        return health_probe.probe(
            base_url,
            ready_first=True,
            admin_key=TEST_ADMIN_KEY,
            shm_path=server.shm_path,
            shm_min_free_bytes=min_free,
        )

    assert probe().healthy
    assert post_texts(server, largest_request)[0] == 200

    for _ in range(8):  # bounded: each refused request grows a region by 32 MiB or more
        status, body = post_texts(server, [OVERSIZED_TEXT])
        assert status in (400, 500), body
        if not health_probe.check_shared_memory(server.shm_path, min_free).healthy:
            break
    # Nothing that needs a region to grow can run any more (a restarted stub's region, a batch
    # larger than what the regions hold). Since the encoder pools in its graph, the largest
    # valid request fits in the regions as they are, so a request that must grow them shows it.
    status, body = post_texts(server, [OVERSIZED_TEXT])
    assert status == 500 and "shared memory" in body, (status, body[:300])

    # What Triton and the canary alone say: all is well.
    assert health_probe.check_ready(base_url, timeout_s=5).healthy
    assert health_probe.probe(base_url, ready_first=True, admin_key=TEST_ADMIN_KEY).healthy
    verdict = probe()
    assert not verdict.healthy
    assert "only a restart frees it" in verdict.reason
