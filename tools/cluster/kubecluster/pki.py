"""The cluster's certificates and its ServiceAccount signing key, made once with openssl.

One CA signs the API server's serving certificate and a client certificate per identity: the
administrator (group system:masters); the controller manager, the scheduler and kube-proxy under
the user names that Kubernetes' bootstrap RBAC grants their roles to; and the pod runner as a
node (system:node:<name> in system:nodes), which the Node authorizer and NodeRestriction then
hold to its own Node, Lease and pods, as they hold a kubelet.

A second CA, the front proxy's (as kubeadm keeps it apart), signs the one client certificate
the API server's aggregator presents to extension API servers (prometheus-adapter): they trust
the user and groups it forwards in request headers only from a certificate of that CA with that
name, so no other client of the main CA can speak for someone else. Extension API servers get
serving certificates from the main CA for their Service's DNS name, which the APIService's
caBundle then vouches for.
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
# The aggregator's identity towards extension API servers (--requestheader-allowed-names).
FRONT_PROXY_CLIENT = "front-proxy-client"

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

    @property
    def front_proxy_ca_cert(self) -> Path:
        return self.folder / "front-proxy-ca.crt"

    @property
    def front_proxy_ca_key(self) -> Path:
        return self.folder / "front-proxy-ca.key"

    @property
    def front_proxy_client_cert(self) -> Path:
        return self.folder / f"{FRONT_PROXY_CLIENT}.crt"

    @property
    def front_proxy_client_key(self) -> Path:
        return self.folder / f"{FRONT_PROXY_CLIENT}.key"

    def service_cert(self, namespace: str, name: str) -> Path:
        return self.folder / f"service-{namespace}-{name}.crt"

    def service_key(self, namespace: str, name: str) -> Path:
        return self.folder / f"service-{namespace}-{name}.key"

    def client_cert(self, identity: ClientIdentity) -> Path:
        return self.folder / f"{identity.file_stem}.crt"

    def client_key(self, identity: ClientIdentity) -> Path:
        return self.folder / f"{identity.file_stem}.key"


CLIENT_EXTENSIONS = ["keyUsage=critical,digitalSignature,keyEncipherment",
                     "extendedKeyUsage=clientAuth"]  # fmt: skip


def _openssl(*args: str) -> None:
    result = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {result.stderr.strip()}")


def _self_signed_ca(key: Path, cert: Path, name: str) -> None:
    _openssl("genrsa", "-out", str(key), "2048")
    _openssl("req", "-x509", "-new", "-key", str(key), "-days", DAYS, "-subj", f"/CN={name}",
             "-out", str(cert))  # fmt: skip


def _signed(
    pki: Pki, key: Path, cert: Path, subject: str, extensions: list[str],
    ca: tuple[Path, Path] | None = None,
) -> None:  # fmt: skip
    ca_cert, ca_key = ca or (pki.ca_cert, pki.ca_key)
    request = cert.with_suffix(".csr")
    _openssl("genrsa", "-out", str(key), "2048")
    _openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(request))
    extension_file = cert.with_suffix(".ext")
    extension_file.write_text("\n".join(extensions) + "\n")
    _openssl(
        "x509", "-req", "-in", str(request), "-CA", str(ca_cert), "-CAkey", str(ca_key),
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
        _self_signed_ca(pki.ca_key, pki.ca_cert, "scalable-inference-server-e2e-ca")
    if not pki.front_proxy_ca_cert.is_file():
        _self_signed_ca(pki.front_proxy_ca_key, pki.front_proxy_ca_cert, "front-proxy-ca")
    if not pki.front_proxy_client_cert.is_file():
        _signed(
            pki, pki.front_proxy_client_key, pki.front_proxy_client_cert,
            f"/CN={FRONT_PROXY_CLIENT}", CLIENT_EXTENSIONS,
            ca=(pki.front_proxy_ca_cert, pki.front_proxy_ca_key),
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
            pki, pki.client_key(identity), pki.client_cert(identity), subject, CLIENT_EXTENSIONS
        )
    if not pki.service_account_key.is_file():
        _openssl("genrsa", "-out", str(pki.service_account_key), "2048")
        _openssl(
            "rsa", "-in", str(pki.service_account_key), "-pubout",
            "-out", str(pki.service_account_public_key),
        )  # fmt: skip
    return pki


def ensure_own_ca_cert(folder: Path, ca_name: str, names: list[str]) -> Path:
    """`ca.crt`, `tls.crt` and `tls.key` in `folder`: a CA of its own and one certificate it
    signs for `names`, good for serving and as a client (mutual TLS between the parts of one
    program, as KEDA's own certificate manager makes them). Kept once made."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    own = Pki(folder)
    if not own.ca_cert.is_file():
        _self_signed_ca(own.ca_key, own.ca_cert, ca_name)
    cert = folder / "tls.crt"
    if not cert.is_file():
        _signed(
            own, folder / "tls.key", cert, f"/CN={names[0].split(':', 1)[1]}",
            ["keyUsage=critical,digitalSignature,keyEncipherment",
             "extendedKeyUsage=serverAuth,clientAuth", "subjectAltName=" + ",".join(names)],
        )  # fmt: skip
    return folder


def ensure_service_cert(pki: Pki, namespace: str, name: str) -> tuple[Path, Path]:
    """A serving certificate for the Service `name` in `namespace`, signed by the main CA: the
    aggregator checks an extension API server's certificate against `<name>.<namespace>.svc`."""
    cert, key = pki.service_cert(namespace, name), pki.service_key(namespace, name)
    if not cert.is_file():
        names = [f"DNS:{name}.{namespace}.svc", f"DNS:{name}.{namespace}.svc.cluster.local"]
        _signed(
            pki, key, cert, f"/CN={name}.{namespace}.svc",
            ["keyUsage=critical,digitalSignature,keyEncipherment",
             "extendedKeyUsage=serverAuth", "subjectAltName=" + ",".join(names)],
        )  # fmt: skip
    return cert, key
