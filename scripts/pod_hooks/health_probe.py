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

With `--check-ready` it first asks `/v2/health/ready` too (models loaded, server not stopping).
With `--shm-min-free-bytes` it also checks the free space of /dev/shm: the Python backend grows
its shared-memory regions for large requests (refused ones included) and never shrinks them, so
a full /dev/shm fails every larger request with "Failed to increase the shared memory pool
size" while a one-text canary still passes. Only a restart gives that memory back.
The container runs it as an exec probe (the image copies this unit, scripts/pod_hooks/, whole and
links /opt/scalable-inference-server/bin/triton-probe to this file); the local fault scenarios run
the same code. Standard library only, like triton-drain.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_MODEL = "text_embedding"
# The ensemble's names (python_backend/contract.py; this unit imports nothing outside itself).
CANARY_INPUT = "TEXT"
CANARY_TEXT = "health check"
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


def canary(base_url: str, model: str, timeout_s: float) -> ProbeResult:
    """One single-text inference request; see the module docstring for how answers count."""
    body = {
        "inputs": [
            {"name": CANARY_INPUT, "shape": [1, 1], "datatype": "BYTES", "data": [CANARY_TEXT]}
        ]
    }
    try:
        status, payload = _post_json(f"{base_url}/v2/models/{model}/infer", body, timeout_s)
    except OSError as error:  # refused, reset, or timed out
        return ProbeResult(False, f"inference request to {model} got no answer: {error}")
    text = payload.decode("utf-8", errors="replace")[:300]
    if status == 200:
        return ProbeResult(True, "inference answered")
    if status == BUSY_STATUS:
        return ProbeResult(True, f"busy, not broken: {text}")
    return ProbeResult(False, f"inference request to {model} failed with {status}: {text}")


def probe(
    base_url: str = DEFAULT_URL,
    model: str = DEFAULT_MODEL,
    timeout_s: float = 3.0,
    ready_first: bool = False,
    shm_path: str = DEFAULT_SHM_PATH,
    shm_min_free_bytes: int = 0,
) -> ProbeResult:
    if ready_first:
        ready = check_ready(base_url, timeout_s)
        if not ready.healthy:
            return ready
    if shm_min_free_bytes > 0:
        shared_memory = check_shared_memory(shm_path, shm_min_free_bytes)
        if not shared_memory.healthy:
            return shared_memory
    return canary(base_url, model, timeout_s)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="Triton's HTTP endpoint (default: %(default)s)"
    )
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="model to send the canary to (default: %(default)s)"
    )
    parser.add_argument(
        "--timeout-seconds",
        type=float,
        default=3.0,
        help="longest wait for each answer; keep it under the probe's timeoutSeconds "
        "(default: %(default)s)",
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
        "it to Triton's python,shm-growth-byte-size (default: 0, not checked)",
    )
    parser.add_argument(
        "--shm-path",
        default=DEFAULT_SHM_PATH,
        help="the shared-memory filesystem the Python backend uses (default: %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    result = probe(
        args.url.rstrip("/"),
        args.model,
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
