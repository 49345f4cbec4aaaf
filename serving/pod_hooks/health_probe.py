#!/usr/bin/env python3
"""A readiness and liveness check that notices what Triton's own health endpoints miss.

On Triton 2.51, when a Python-backend stub process dies (killed for memory, a crash in native
code), the model stays READY: `/v2/health/ready` and `/v2/models/<m>/ready` answer 200, while
every request to it fails with "Stub process '<model>_0_0' is not healthy", and Triton never
restarts the stub. So this check sends one tiny inference request (a canary) and judges the
answer:

- an embedding: healthy;
- UNAVAILABLE / HTTP 503 (queue full, queue timeout, server stopping): busy, not broken; a pod
  must not be restarted or taken out of service for being overloaded, or overload cascades;
- any other error, no answer in time, or no server: unhealthy.

Which models get a canary, and what it holds, comes from the server itself (`model_roles`):
every entry model (one that no ensemble calls) that is READY, with the smallest request its
config allows. The repository index and config APIs are restricted in the Deployment, so the
probe sends the admin header from the container's TRITON_ADMIN_KEY. `--model` (repeatable)
names the models instead; their canaries then come from the unrestricted metadata API.

With `--check-ready` it first asks `/v2/health/ready` too (models loaded, server not stopping).
With `--shm-min-free-bytes` it also checks the free space of /dev/shm: the Python backend grows
its shared-memory regions for large requests (refused ones included) and never shrinks them, so
a full /dev/shm fails every larger request with "Failed to increase the shared memory pool
size" while a one-text canary still passes. Only a restart gives that memory back.
The container runs it as an exec probe (the image copies this unit, serving/pod_hooks/, whole and
links /opt/scalable-inference-server/bin/triton-probe to this file); the local fault scenarios run
the same code. Standard library only (with `model_roles` beside it), like triton-drain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Run as a file (the image's triton-probe, or `python -I health_probe.py`), the unit's folder is
# not importable as a package: put the folder that holds it first on sys.path.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pod_hooks.model_roles import (
    ADMIN_KEY_ENV,
    ModelRolesError,
    canary_from_metadata,
    roles_from_server,
)

DEFAULT_URL = "http://127.0.0.1:8000"
BUSY_STATUS = 503  # Triton's HTTP status for UNAVAILABLE
DEFAULT_SHM_PATH = "/dev/shm"
MIB = 1024 * 1024


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    reason: str


def _post_json(url: str, body: dict, timeout_s: float) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read()


def check_ready(base_url: str, timeout_s: float) -> ProbeResult:
    try:
        with urllib.request.urlopen(f"{base_url}/v2/health/ready", timeout=timeout_s) as response:
            status = int(response.status)
    except urllib.error.HTTPError as error:
        status = int(error.code)
    except OSError as error:
        return ProbeResult(False, f"no answer from {base_url}: {error}")
    if status != 200:
        return ProbeResult(False, f"/v2/health/ready answered {status}")
    return ProbeResult(True, "ready")


def check_shared_memory(path: str, min_free_bytes: int) -> ProbeResult:
    """Whether the Python backend can still grow a shared-memory region by `min_free_bytes`.

    Set the threshold to Triton's `shm-growth-byte-size`: below it the next growth fails.
    """
    try:
        stats = os.statvfs(path)
    except OSError as error:
        return ProbeResult(False, f"cannot read the free space of {path}: {error}")
    free = stats.f_bavail * stats.f_frsize
    if free < min_free_bytes:
        return ProbeResult(
            False,
            f"{path} has {free / MIB:.1f} MiB free, under the {min_free_bytes / MIB:.1f} MiB the "
            "Python backend grows its shared memory by: larger requests fail, and only a restart "
            "frees it",
        )
    return ProbeResult(True, f"{path} has {free / MIB:.1f} MiB free")


def canary(base_url: str, model: str, body: dict, timeout_s: float) -> ProbeResult:
    """One smallest inference request; see the module docstring for how answers count."""
    try:
        status, payload = _post_json(f"{base_url}/v2/models/{model}/infer", body, timeout_s)
    except OSError as error:  # refused, reset, or timed out
        return ProbeResult(False, f"inference request to {model} got no answer: {error}")
    text = payload.decode("utf-8", errors="replace")[:300]
    if status == 200:
        return ProbeResult(True, f"{model} answered")
    if status == BUSY_STATUS:
        return ProbeResult(True, f"{model} busy, not broken: {text}")
    return ProbeResult(False, f"inference request to {model} failed with {status}: {text}")


def probe(
    base_url: str = DEFAULT_URL,
    models: Sequence[str] = (),
    timeout_s: float = 3.0,
    ready_first: bool = False,
    admin_key: str | None = None,
    shm_path: str = DEFAULT_SHM_PATH,
    shm_min_free_bytes: int = 0,
) -> ProbeResult:
    """Canaries to `models`, or to every READY entry model the server reports; all must pass,
    within `timeout_s` in all."""
    deadline = time.monotonic() + timeout_s
    if ready_first:
        ready = check_ready(base_url, timeout_s)
        if not ready.healthy:
            return ready
    if shm_min_free_bytes > 0:
        shared_memory = check_shared_memory(shm_path, shm_min_free_bytes)
        if not shared_memory.healthy:
            return shared_memory
    if admin_key is None:
        admin_key = os.environ.get(ADMIN_KEY_ENV)
    try:
        if models:
            bodies = {m: canary_from_metadata(base_url, m, timeout_s) for m in models}
        else:
            roles = roles_from_server(base_url, admin_key, timeout_s)
            bodies = {m: roles.canary_request(m) for m in roles.select()}
    except ModelRolesError as error:
        return ProbeResult(False, f"cannot choose the canary models: {error}")
    # Side by side, each with what is left of the budget: the kubelet's timeoutSeconds covers
    # the whole probe, however many entry models there are.
    remaining = max(0.1, deadline - time.monotonic())
    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        results = list(
            pool.map(lambda item: canary(base_url, item[0], item[1], remaining), bodies.items())
        )
    failed = [r for r in results if not r.healthy]
    if failed:
        return failed[0]
    return ProbeResult(True, "; ".join(r.reason for r in results))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="Triton's HTTP endpoint (default: %(default)s)"
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        dest="models",
        metavar="NAME",
        help="send the canary to this model (repeatable; default: every READY entry model "
        "the server reports, i.e. none that an ensemble calls)",
    )
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=3.0,
        help="longest wait for the answers (the canaries go side by side); keep it under "
        "the probe's timeoutSeconds (default: %(default)s)",
    )
    parser.add_argument(
        "--check-ready",
        action="store_true",
        help="ask /v2/health/ready before the canary (for the readiness probe)",
    )
    parser.add_argument(
        "--shm-min-free-bytes",
        type=int,
        default=0,
        metavar="BYTES",
        help="unhealthy when the shared-memory filesystem has less free space than this; set "
        "it to Triton's python,shm-growth-byte-size (default: %(default)s, not checked)",
    )
    parser.add_argument(
        "--shm-path",
        default=DEFAULT_SHM_PATH,
        help="the shared-memory filesystem the Python backend uses (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    result = probe(
        args.url.rstrip("/"),
        args.models,
        args.timeout_seconds,
        args.check_ready,
        shm_path=args.shm_path,
        shm_min_free_bytes=args.shm_min_free_bytes,
    )
    # The kubelet records an exec probe's output in the pod's events when it fails.
    print(result.reason, file=sys.stdout if result.healthy else sys.stderr)
    return 0 if result.healthy else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triton-probe", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
