"""What a local server exposes when it listens beyond loopback, said before it starts."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from pod_hooks.model_roles import ADMIN_HEADER, ADMIN_KEY_ENV

# Triton's API categories that change or reveal the server, as its restricted-API flags name
# them. `shared-memory` is the sharpest: a client that registers a system shared-memory region
# by name can read and write that region of /dev/shm.
ADMIN_API_CATEGORIES = (
    "model-repository",
    "model-config",
    "shared-memory",
    "statistics",
    "trace",
    "logging",
)
RESTRICTION_FLAGS = ("--http-restricted-api", "--grpc-restricted-protocol")


def is_loopback(address: str) -> bool:
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _restricted(flag: str, triton_args: Sequence[str]) -> set[str]:
    restricted: set[str] = set()
    for arg in triton_args:
        if arg.startswith(f"{flag}="):
            apis = arg.split("=", 1)[1].split(":", 1)[0]
            restricted.update(api.strip() for api in apis.split(","))
    return restricted


def exposure_warning(address: str, triton_args: Sequence[str]) -> str | None:
    """A warning when other machines can reach APIs that nobody locked, else None."""
    if is_loopback(address):
        return None
    open_apis = {
        flag: [api for api in ADMIN_API_CATEGORIES if api not in _restricted(flag, triton_args)]
        for flag in RESTRICTION_FLAGS
    }
    if not any(open_apis.values()):
        return None
    unlocked = sorted({api for apis in open_apis.values() for api in apis})
    categories = ",".join(ADMIN_API_CATEGORIES)
    return (
        f"WARNING: listening on {address}: anyone who can reach these ports can call Triton's "
        f"{', '.join(unlocked)} APIs (shared-memory lets a client read and write regions of "
        "/dev/shm by name), and one form-encoded body of about 4 MB crashes Triton 2.51. "
        "Lock the APIs with a header key, as the Deployment does:\n"
        f"  inference-tools serve --address {address} -- "
        f"--http-restricted-api={categories}:{ADMIN_HEADER}=KEY "
        f"--grpc-restricted-protocol={categories}:{ADMIN_HEADER}=KEY\n"
        f"with {ADMIN_KEY_ENV}=KEY in the environment, so that the stop can still unload the "
        "models to drain (the local server runs in explicit model-control mode: model-repository "
        "loads and unloads models),\n"
        "and keep clients behind a proxy that caps bodies and refuses form content types "
        "(docs/security.md)."
    )
