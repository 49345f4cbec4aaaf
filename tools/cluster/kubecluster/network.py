"""Pod networking on the host: a bridge holding the pods' gateway address, and per pod a
network namespace whose eth0 (one end of a veth pair, the other end on the bridge) has the pod
IP. Pod IPs are reachable from the host and from each other; nothing is routed off the machine.
Every name starts with HOST_PREFIX so teardown finds exactly what the cluster made."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from kubecluster.layout import BRIDGE, BRIDGE_ADDRESS, HOST_PREFIX, KUBE_PROXY_NFT_TABLE

NETNS_DIR = Path("/run/netns")


class NetworkSetupError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        message = result.stderr.strip()
        if "Operation not permitted" in message or "Permission denied" in message:
            raise NetworkSetupError(
                f"`ip {' '.join(args)}` was refused ({message}): creating network namespaces, "
                "veth pairs and bridges needs CAP_NET_ADMIN and CAP_SYS_ADMIN (run as root)"
            )
        raise NetworkSetupError(f"`ip {' '.join(args)}` failed: {message}")
    return result


def require_capabilities() -> None:
    """Say which capability is missing before anything is started."""
    if os.geteuid() != 0:
        raise NetworkSetupError(
            "the pod network (network namespaces, veth pairs, a bridge) and the pods' mount "
            "namespaces need CAP_NET_ADMIN and CAP_SYS_ADMIN: run `make cluster` as root"
        )
    for tool, package in (
        ("ip", "iproute2"),
        ("nsenter", "util-linux"),
        ("unshare", "util-linux"),
        ("setpriv", "util-linux"),
        ("openssl", "openssl"),
        ("nft", "nftables"),
    ):
        if shutil.which(tool) is None:
            raise NetworkSetupError(
                f"`{tool}` is not installed (Debian package {package}; `make system-deps`)"
            )


def ensure_bridge() -> None:
    if _ip("link", "show", BRIDGE, check=False).returncode != 0:
        _ip("link", "add", BRIDGE, "type", "bridge")
        _ip("addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")


def namespace_name(pod_uid: str) -> str:
    return f"{HOST_PREFIX}-{pod_uid[:13]}"


def _host_veth(pod_uid: str) -> str:
    # Interface names stop at 15 characters; a digest keeps them unique per pod.
    return f"{HOST_PREFIX}v{hashlib.sha256(pod_uid.encode()).hexdigest()[:10]}"


def create_pod_network(pod_uid: str, pod_ip: str) -> str:
    """Namespace with loopback and eth0 at `pod_ip`, default route via the bridge."""
    namespace = namespace_name(pod_uid)
    host_end = _host_veth(pod_uid)
    delete_pod_network(pod_uid)
    _ip("netns", "add", namespace)
    _ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", namespace)
    _ip("link", "set", host_end, "master", BRIDGE, "up")
    _ip("-n", namespace, "link", "set", "lo", "up")
    _ip("-n", namespace, "addr", "add", f"{pod_ip}/24", "dev", "eth0")
    _ip("-n", namespace, "link", "set", "eth0", "up")
    _ip("-n", namespace, "route", "add", "default", "via", BRIDGE_ADDRESS)
    return namespace


def delete_pod_network(pod_uid: str) -> None:
    # Deleting the namespace deletes eth0 and with it the host end of the pair.
    _ip("netns", "delete", namespace_name(pod_uid), check=False)
    _ip("link", "delete", _host_veth(pod_uid), check=False)


def leftovers() -> dict[str, list[str]]:
    """Everything of ours still on the host: what the teardown test expects to be empty."""
    links = json.loads(_ip("-j", "link", "show").stdout or "[]")
    namespaces = (
        sorted(p.name for p in NETNS_DIR.glob(f"{HOST_PREFIX}-*")) if NETNS_DIR.is_dir() else []
    )
    routes = json.loads(_ip("-j", "route", "show").stdout or "[]")
    return {
        "nft": nft_tables(),
        "links": sorted(link["ifname"] for link in links if link["ifname"].startswith(HOST_PREFIX)),
        "netns": namespaces,
        "routes": sorted(
            route.get("dst", "") for route in routes if route.get("dev", "").startswith(HOST_PREFIX)
        ),
    }


def nft_tables() -> list[str]:
    """kube-proxy's tables, as `<family> <name>`; none where nft is not installed."""
    if shutil.which("nft") is None:
        return []
    result = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=False)
    tables = [line.split(maxsplit=1)[1] for line in result.stdout.splitlines() if line.strip()]
    return sorted(t for t in tables if t.split()[-1] == KUBE_PROXY_NFT_TABLE)


def remove_all() -> None:
    """Delete every namespace, link and nft table of ours (processes must be gone first)."""
    for table in nft_tables():
        subprocess.run(["nft", "delete", "table", *table.split()], capture_output=True, check=False)
    for namespace in leftovers()["netns"]:
        _ip("netns", "delete", namespace, check=False)
    for link in leftovers()["links"]:
        _ip("link", "delete", link, check=False)


def processes_in(namespace: str) -> list[int]:
    return [int(pid) for pid in _ip("netns", "pids", namespace, check=False).stdout.split()]


def processes_in_namespaces() -> list[int]:
    return [pid for namespace in leftovers()["netns"] for pid in processes_in(namespace)]
