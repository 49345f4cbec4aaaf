"""The replicas of a Triton Deployment, each reached through the API server's pod proxy.

Pods are found with the Deployment's own label selector, so the list is exactly the pods the
Deployment owns (and the Service usually routes to), not whichever one a Service would pick.
Requests go to `/api/v1/namespaces/NS/pods/POD:PORT/proxy/PATH`: they need `get` and `create`
on `pods/proxy` in the namespace and no network path to the pods themselves.
"""

from __future__ import annotations

import json
import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

from inference_tools.publishing.endpoints import Response, TritonEndpoint

# The pod proxy puts the port straight into the pod's address: a number, not a port name.
TRITON_HTTP_PORT = "8000"


def label_selector(selector: Any) -> str:
    """A V1LabelSelector as the string `list_namespaced_pod(label_selector=...)` takes."""
    terms = [f"{key}={value}" for key, value in sorted((selector.match_labels or {}).items())]
    for expression in selector.match_expressions or []:
        values = ",".join(expression.values or [])
        operator = expression.operator
        if operator == "In":
            terms.append(f"{expression.key} in ({values})")
        elif operator == "NotIn":
            terms.append(f"{expression.key} notin ({values})")
        elif operator == "Exists":
            terms.append(expression.key)
        elif operator == "DoesNotExist":
            terms.append(f"!{expression.key}")
        else:
            raise ValueError(f"unknown label selector operator {operator!r}")
    if not terms:
        raise ValueError("the Deployment's selector is empty: it would match every pod")
    return ",".join(terms)


def pod_is_ready(pod: Any) -> bool:
    if pod.metadata.deletion_timestamp is not None or pod.status is None:
        return False
    if pod.status.phase != "Running":
        return False
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


class PodProxyEndpoint(TritonEndpoint):
    """One pod's Triton HTTP port through the API server (the official client's ApiClient)."""

    def __init__(self, api_client: Any, namespace: str, pod: str, port: str) -> None:
        self.api_client = api_client
        self.namespace = namespace
        self.pod = pod
        self.port = port
        self.label = f"pod/{pod}"

    def send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str], timeout_s: float
    ) -> Response:
        from kubernetes.client.exceptions import ApiException

        quote = urllib.parse.quote
        # Built by hand: the generated connect_*_proxy_with_path methods escape the '/' of the
        # path and carry no request body, and Triton's load and infer requests need one.
        resource_path = (
            f"/api/v1/namespaces/{quote(self.namespace, safe='')}/pods/"
            f"{quote(self.pod, safe='')}:{quote(self.port, safe='')}/proxy/"
            f"{quote(path, safe='/')}"
        )
        serialized = self.api_client.param_serialize(
            method=method,
            resource_path=resource_path,
            header_params=headers,
            # The client's REST layer JSON-encodes bodies itself: hand it the decoded object.
            body=json.loads(body) if body else None,
            auth_settings=["BearerToken"],
        )
        try:
            response = self.api_client.call_api(*serialized, _request_timeout=timeout_s)
            response.read()
        except ApiException as error:
            body = error.body if isinstance(error.body, bytes) else str(error.body or "").encode()
            return Response(int(error.status or 0), body)
        return Response(int(response.status), response.data or b"")


@dataclass(frozen=True)
class Replica:
    pod: str
    ready: bool
    endpoint: PodProxyEndpoint


def deployment_replicas(
    apps_api: Any,
    core_api: Any,
    namespace: str,
    deployment: str,
    port: str = TRITON_HTTP_PORT,
) -> list[Replica]:
    """Every pod the Deployment's selector matches, with whether Kubernetes counts it ready."""
    spec = apps_api.read_namespaced_deployment(deployment, namespace).spec
    selector = label_selector(spec.selector)
    pods = core_api.list_namespaced_pod(namespace, label_selector=selector).items
    return [
        Replica(
            pod=pod.metadata.name,
            ready=pod_is_ready(pod),
            endpoint=PodProxyEndpoint(core_api.api_client, namespace, pod.metadata.name, port),
        )
        for pod in sorted(pods, key=lambda p: p.metadata.name)
    ]


def kubernetes_apis(context: str | None = None) -> tuple[Any, Any]:
    """(AppsV1Api, CoreV1Api) from the in-cluster config or the kubeconfig (KUBECONFIG)."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        # Read KUBECONFIG now: the client's default was fixed when the module was imported.
        config.load_kube_config(config_file=os.environ.get("KUBECONFIG"), context=context)
    api_client = client.ApiClient()
    return client.AppsV1Api(api_client), client.CoreV1Api(api_client)
