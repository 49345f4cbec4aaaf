"""The cluster's certificates and its ServiceAccount signing key, made once with openssl.

One CA signs the API server's serving certificate and a client certificate per identity: the
administrator (group system:masters); the controller manager, the scheduler and kube-proxy under
the user names that Kubernetes' bootstrap RBAC grants their roles to; and the pod runner as a
node (system:node:<name> in system:nodes), which the Node authorizer and NodeRestriction then
hold to its own Node, Lease and pods, as they hold a kubelet.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from kubecluster.layout import KUBERNETES_SERVICE_IP, NODE_NAME

DAYS = "3650"


@dataclass(frozen=True)
class ClientIdentity:
    file_stem: str
    user: str
    group: str | None


ADMIN = ClientIdentity("admin", "kubernetes-admin", "system:masters")
CONTROLLER_MANAGER = ClientIdentity(
    "kube-controller-manager", "system:kube-controller-manager", None
)
SCHEDULER = ClientIdentity("kube-scheduler", "system:kube-scheduler", None)
# Bound to the system:node-proxier role by Kubernetes' bootstrap RBAC.
KUBE_PROXY = ClientIdentity("kube-proxy", "system:kube-proxy", None)
POD_RUNNER = ClientIdentity("pod-runner", f"system:node:{NODE_NAME}", "system:nodes")
CLIENTS = (ADMIN, CONTROLLER_MANAGER, SCHEDULER, KUBE_PROXY, POD_RUNNER)

SERVING_NAMES = (
    "IP:127.0.0.1",
    f"IP:{KUBERNETES_SERVICE_IP}",
    "DNS:localhost",
    "DNS:kubernetes",
    "DNS:kubernetes.default",
    "DNS:kubernetes.default.svc",
    "DNS:kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class Pki:
    folder: Path

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.folder / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.folder / "apiserver.key"

    @property
    def service_account_key(self) -> Path:
        return self.folder / "service-account.key"

    @property
    def service_account_public_key(self) -> Path:
        return self.folder / "service-account.pub"

    def client_cert(self, identity: ClientIdentity) -> Path:
        return self.folder / f"{identity.file_stem}.crt"

    def client_key(self, identity: ClientIdentity) -> Path:
        return self.folder / f"{identity.file_stem}.key"


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _signed(pki: Pki, key: Path, cert: Path, subject: str, extensions: list[str]) -> None:
    request = cert.with_suffix(".csr")
    _openssl("genrsa", "-out", str(key), "2048")
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(request))
    extension_file = cert.with_suffix(".ext")
    extension_file.write_text("\n".join(extensions) + "\n")
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(pki.ca_cert), "-CAkey", str(pki.ca_key),
        "-CAcreateserial", "-days", DAYS, "-out", str(cert), "-extfile", str(extension_file),
    )  # fmt: skip
    request.unlink()
    extension_file.unlink()


def ensure_pki(folder: Path) -> Pki:
    """Create what is missing; existing files are kept so a restarted cluster keeps its
    identities (and tokens signed with the ServiceAccount key stay valid)."""
    pki = Pki(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if not pki.ca_cert.is_file():
        _openssl("genrsa", "-out", str(pki.ca_key), "2048")
        _openssl(
            "req", "-x509", "-new", "-key", str(pki.ca_key), "-days", DAYS,
            "-subj", "/CN=scalable-inference-server-e2e-ca", "-out", str(pki.ca_cert),
        )  # fmt: skip
    if not pki.serving_cert.is_file():
        _signed(
            pki, pki.serving_key, pki.serving_cert, "/CN=kube-apiserver",
            ["keyUsage=critical,digitalSignature,keyEncipherment",
             "extendedKeyUsage=serverAuth",
             "subjectAltName=" + ",".join(SERVING_NAMES)],
        )  # fmt: skip
    for identity in CLIENTS:
        if pki.client_cert(identity).is_file():
            continue
        subject = f"/CN={identity.user}" + (f"/O={identity.group}" if identity.group else "")
        _signed(
            pki, pki.client_key(identity), pki.client_cert(identity), subject,
            ["keyUsage=critical,digitalSignature,keyEncipherment",
             "extendedKeyUsage=clientAuth"],
        )  # fmt: skip
    if not pki.service_account_key.is_file():
        _openssl("genrsa", "-out", str(pki.service_account_key), "2048")
        _openssl(
            "rsa", "-in", str(pki.service_account_key), "-pubout",
            "-out", str(pki.service_account_public_key),
        )  # fmt: skip
    return pki
