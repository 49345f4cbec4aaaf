"""A small client for the Kubernetes API from a kubeconfig with client certificates: enough
for the pod runner (nodes, leases, pods, their status, ConfigMaps and Secrets) and the tests."""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit


def write_kubeconfig(
    path: Path, server: str, ca_file: Path, user: str, credentials: dict[str, str]
) -> None:
    """A kubeconfig of one cluster and one user (client certificate or token); JSON is YAML, and
    kubectl, client-go and `KubeApi.from_kubeconfig` read it."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "e2e", "cluster": {"server": server, "certificate-authority": str(ca_file)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": user}}],
        "current-context": "e2e",
    }
    path.write_text(json.dumps(config, indent=2) + "\n")
    path.chmod(0o600)


def write_service_account_kubeconfig(
    api: KubeApi, path: Path, ca_file: Path, namespace: str, account: str, seconds: int
) -> None:
    """A kubeconfig for a host process acting as ServiceAccount `account`: a token of
    `seconds` requested from the API (TokenRequest), and the cluster's CA."""
    token = api.create(
        f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
         "spec": {"expirationSeconds": seconds}},
    )["status"]["token"]  # fmt: skip
    write_kubeconfig(path, f"https://{api.host}:{api.port}", ca_file, account, {"token": token})


class ApiError(RuntimeError):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        super().__init__(f"{method} {path}: {status} {body[:500]}")
        self.status = status
        self.body = body


@dataclass
class KubeApi:
    host: str
    port: int
    context: ssl.SSLContext
    # The cluster's CA file: what a client presenting a bearer token instead of a certificate
    # trusts the server with.
    context_ca: str

    @classmethod
    def from_kubeconfig(cls, path: Path) -> KubeApi:
        # The kubeconfigs written by control_plane are JSON (a subset of YAML).
        config = json.loads(path.read_text())
        cluster = config["clusters"][0]["cluster"]
        user = config["users"][0]["user"]
        context = ssl.create_default_context(cafile=cluster["certificate-authority"])
        context.load_cert_chain(user["client-certificate"], user["client-key"])
        url = urlsplit(cluster["server"])
        return cls(
            url.hostname or "127.0.0.1", url.port or 443, context, cluster["certificate-authority"]
        )

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Any:
        connection = http.client.HTTPSConnection(
            self.host, self.port, context=self.context, timeout=timeout
        )
        try:
            payload = None if body is None else json.dumps(body).encode()
            headers = {"Accept": "application/json"}
            if payload is not None:
                headers["Content-Type"] = content_type
            connection.request(method, path, body=payload, headers=headers)
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
        finally:
            connection.close()
        if response.status >= 300:
            raise ApiError(response.status, method, path, text)
        return json.loads(text) if text else None

    def get(self, path: str) -> Any:
        return self.request("GET", path)

    def create(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def replace(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str, body: Any = None) -> Any:
        return self.request("DELETE", path, body)

    def strategic_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/strategic-merge-patch+json")

    def merge_patch(self, path: str, body: Any) -> Any:
        return self.request("PATCH", path, body, "application/merge-patch+json")
