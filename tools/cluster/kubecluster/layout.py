"""Where the cluster keeps its files, and the pinned versions read from the Go module.

The go.mod beside this package is the one place the Kubernetes and etcd versions are written;
everything else (the build cache key, the ldflags, the docs' figures) reads them from there.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

GO_MODULE_DIR = Path(__file__).resolve().parent.parent
CHECKOUT = GO_MODULE_DIR.parent.parent

# A prefix for every host-level name the cluster creates (bridge, network namespaces, veths), so
# that `down` and the leak test can find each one and never touch anything else.
HOST_PREFIX = "sisk"
BRIDGE = f"{HOST_PREFIX}0"
# Pod addresses: the bridge holds .1, pods get the rest of the /24.
POD_SUBNET_PREFIX = "10.244.0"
POD_CIDR = f"{POD_SUBNET_PREFIX}.0/24"
BRIDGE_ADDRESS = f"{POD_SUBNET_PREFIX}.1"
SERVICE_CIDR = "10.96.0.0/16"
# The first address of the service range: the `kubernetes` Service, named in the serving cert.
KUBERNETES_SERVICE_IP = "10.96.0.1"
NODE_NAME = "pod-runner-0"
# kube-proxy's nftables tables (one per IP family it programs); removed by `down`.
KUBE_PROXY_NFT_TABLE = "kube-proxy"


@dataclass(frozen=True)
class PinnedVersions:
    kubernetes: str
    etcd: str

    @property
    def key(self) -> str:
        """Names the binaries' cache folder: versions plus a digest of go.mod and go.sum, so
        that any change to the module (a replace, a dependency bump) builds afresh."""
        digest = hashlib.sha256()
        for name in ("go.mod", "go.sum"):
            digest.update((GO_MODULE_DIR / name).read_bytes())
        return f"k8s-{self.kubernetes}_etcd-{self.etcd}_{digest.hexdigest()[:12]}"


def pinned_versions(go_mod: Path = GO_MODULE_DIR / "go.mod") -> PinnedVersions:
    text = go_mod.read_text()

    def version_of(module: str) -> str:
        match = re.search(rf"^\s*{re.escape(module)} (v\S+)", text, re.MULTILINE)
        if match is None:
            raise ValueError(f"{go_mod} does not require {module}")
        return match.group(1)

    return PinnedVersions(
        kubernetes=version_of("k8s.io/kubernetes"), etcd=version_of("go.etcd.io/etcd/server/v3")
    )


@dataclass(frozen=True)
class ClusterLayout:
    """Every file of one cluster, under `<checkout>/.work/cluster`."""

    root: Path

    @classmethod
    def for_checkout(cls, checkout: Path = CHECKOUT) -> ClusterLayout:
        return cls(checkout / ".work" / "cluster")

    @property
    def bin_root(self) -> Path:
        return self.root / "bin"

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def run(self) -> Path:
        """Pid files and the state of the running cluster (its ports)."""
        return self.root / "run"

    @property
    def pods(self) -> Path:
        """Per-pod folders: container logs and disk-backed emptyDir volumes."""
        return self.root / "pods"

    @property
    def pod_python(self) -> Path:
        """The venv that stands for the image's python3 (kubecluster.pod_python)."""
        return self.root / "pod-python"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def state_file(self) -> Path:
        return self.run / "state.json"

    def pid_file(self, component: str) -> Path:
        return self.run / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.logs / f"{component}.log"
