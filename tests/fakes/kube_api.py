"""A stand-in Kubernetes API server on loopback for the official client to talk to.

It answers the three calls the rollout makes (read a Deployment, list pods by label selector,
proxy to a pod) with objects built from the client's own models, and forwards each pod-proxy
request to a real Triton chosen per pod, as the API server would forward it to the pod's IP.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

from kubernetes import client

PROXY_PATH = re.compile(
    r"/api/v1/namespaces/(?P<ns>[^/]+)/pods/(?P<pod>[^/:]+):(?P<port>\d+)/proxy/(?P<path>.*)"
)
DEPLOYMENT_PATH = re.compile(r"/apis/apps/v1/namespaces/(?P<ns>[^/]+)/deployments/(?P<name>[^/]+)")
PODS_PATH = re.compile(r"/api/v1/namespaces/(?P<ns>[^/]+)/pods")


@dataclass(frozen=True)
class ProxiedRequest:
    pod: str
    port: str
    method: str
    path: str
    admin_key: str | None
    authorization: str | None


@dataclass
class FakeKubeApi:
    namespace: str
    deployment: client.V1Deployment
    pods: list[client.V1Pod]
    pod_backends: dict[str, str]  # pod name -> "host:port" of the Triton behind it
    admin_header: str = "x-triton-admin-key"
    selectors_asked: list[str] = field(default_factory=list)
    proxied: list[ProxiedRequest] = field(default_factory=list)

    def start(self) -> str:
        api = self
        serializer = client.ApiClient()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if match := PROXY_PATH.fullmatch(url.path):
                    self._proxy(match, url.query, body)
                elif match := DEPLOYMENT_PATH.fullmatch(url.path):
                    data = serializer.sanitize_for_serialization(api.deployment)
                    self._send(200, json.dumps(data).encode())
                elif PODS_PATH.fullmatch(url.path):
                    api.selectors_asked.append(parse_qs(url.query)["labelSelector"][0])
                    pod_list = client.V1PodList(items=api.pods, metadata=client.V1ListMeta())
                    data = serializer.sanitize_for_serialization(pod_list)
                    self._send(200, json.dumps(data).encode())
                else:
                    self._send(404, b'{"kind": "Status", "code": 404}')

            def _proxy(self, match: re.Match, query: str, body: bytes | None) -> None:
                pod, path = match["pod"], unquote(match["path"])
                api.proxied.append(
                    ProxiedRequest(
                        pod,
                        match["port"],
                        self.command,
                        path,
                        self.headers.get(api.admin_header),
                        self.headers.get("Authorization"),
                    )
                )
                forwarded = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "authorization")
                }
                request = urllib.request.Request(
                    f"http://{api.pod_backends[pod]}/{path}" + (f"?{query}" if query else ""),
                    data=body,
                    method=self.command,
                    headers=forwarded,
                )
                try:
                    with urllib.request.urlopen(request, timeout=120) as response:
                        self._send(response.status, response.read())
                except urllib.error.HTTPError as error:
                    self._send(error.code, error.read())
                except OSError as error:
                    # What the API server answers when it cannot reach the pod.
                    self._send(
                        503, json.dumps({"message": f"error trying to reach pod: {error}"}).encode()
                    )

            do_GET = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


LABELS = {"app.kubernetes.io/name": "triton", "app.kubernetes.io/component": "inference-server"}


def triton_deployment(name: str = "triton") -> client.V1Deployment:
    return client.V1Deployment(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels=LABELS),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=LABELS),
                spec=client.V1PodSpec(containers=[client.V1Container(name="triton")]),
            ),
        ),
    )


def triton_pod(name: str, ready: bool, terminating: bool = False) -> client.V1Pod:
    import datetime

    return client.V1Pod(
        metadata=client.V1ObjectMeta(
            name=name,
            labels=LABELS,
            deletion_timestamp=datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
            if terminating
            else None,
        ),
        spec=client.V1PodSpec(containers=[client.V1Container(name="triton")]),
        status=client.V1PodStatus(
            phase="Running",
            conditions=[client.V1PodCondition(type="Ready", status="True" if ready else "False")],
        ),
    )
