"""Every edge we ship routes only the public paths of lab.reliability.edge and carries the same
limits, those `edge.edge_limits()` reads from the Ingress and NGINX Gateway Fabric's policy.

The nginx stand-in of the fault tests (tests/lab/reliability/test_hostile_edge.py) is rendered from
the same module, so what these tests pin in the manifests is what the fault tests exercise.
"""

from __future__ import annotations

import copy
import dataclasses
import re

import pytest
from inference_tools.manifests import validation
from inference_tools.manifests.render import Render
from lab.reliability import edge

from tests.checkout import KUSTOMIZE_DIR

pytestmark = pytest.mark.kubernetes

HOSTILE_CONTENT_TYPES = [
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/plain",
    "application/jsonp",
    "application/json-seq",
]
ACCEPTED_CONTENT_TYPES = ["", "application/json", "application/json; charset=utf-8",
                          "APPLICATION/OCTET-STREAM"]  # fmt: skip
# Where a proxy of ours runs; nothing else may reach the pods' inference ports.
PROXY_NAMESPACES = {"gateway-system", "envoy-gateway-system", "ingress-nginx"}
CLIENT_NAMESPACE_LABEL = "scalable-inference-server/triton-grpc-client"
PERF_JOB_PODS = {
    "app.kubernetes.io/name": "triton-perf",
    "app.kubernetes.io/component": "benchmark",
}


@pytest.fixture(scope="module")
def limits() -> edge.EdgeLimits:
    return edge.edge_limits(KUSTOMIZE_DIR)


def renders_with(all_renders: list[Render], kind: str) -> list[Render]:
    found = [r for r in all_renders if r.of_kind(kind)]
    assert found, f"no render has a {kind}"
    return found


def test_limits_are_read_from_the_rendered_manifests(limits) -> None:
    assert limits == edge.EdgeLimits("8m", 64, 60, 10, 60)
    # nginx's sizes: bare bytes, or k, m, g (either case) in powers of 1024.
    assert [
        dataclasses.replace(limits, max_body_nginx=size).max_body_bytes
        for size in ("512", "16k", "8m", "8M", "1g")
    ] == [512, 16 * 2**10, 8 * 2**20, 8 * 2**20, 2**30]
    with pytest.raises(ValueError, match="not a value"):
        _ = dataclasses.replace(limits, max_body_nginx="8MiB").max_body_bytes


def test_content_type_rule_refuses_forms_and_allows_json_and_binary() -> None:
    for content_type in HOSTILE_CONTENT_TYPES:
        assert not edge.content_type_allowed(content_type), content_type
    for content_type in ACCEPTED_CONTENT_TYPES:
        assert edge.content_type_allowed(content_type), content_type


def test_httproute_routes_exactly_the_public_paths_and_drops_content_type(all_renders) -> None:
    for render in renders_with(all_renders, "HTTPRoute"):
        route = render.one("HTTPRoute", "triton-http")
        routed: dict[str, str] = {}
        for rule in route["spec"]["rules"]:
            removed = [
                f["requestHeaderModifier"]["remove"]
                for f in rule.get("filters", [])
                if f["type"] == "RequestHeaderModifier"
            ]
            assert ["Content-Type"] in removed, (render.name, rule)
            for match in rule["matches"]:
                assert match["path"]["type"] == "Exact", (render.name, match)
                routed[match["path"]["value"]] = match["method"]
        assert set(routed) == edge.public_http_paths(), render.name
        for model in edge.PUBLIC_MODELS:
            assert routed.pop(edge.model_infer_path(model)) == "POST"
        assert set(routed.values()) == {"GET"}, render.name


def test_ingress_routes_exactly_the_public_paths_with_the_edge_limits(all_renders, limits) -> None:
    for render in renders_with(all_renders, "Ingress"):
        for ingress in render.of_kind("Ingress"):
            annotations = ingress["metadata"]["annotations"]
            grpc = annotations.get("nginx.ingress.kubernetes.io/backend-protocol") == "GRPC"
            rules = ingress["spec"]["rules"]
            paths = {p["path"]: p["pathType"] for rule in rules for p in rule["http"]["paths"]}
            expected = edge.public_grpc_paths() if grpc else edge.public_http_paths()
            assert set(paths) == expected, (render.name, ingress["metadata"]["name"])
            assert set(paths.values()) == {"Exact"}
            prefix = "nginx.ingress.kubernetes.io/"
            assert annotations[prefix + "proxy-body-size"] == limits.max_body_nginx
            assert annotations[prefix + "limit-connections"] == str(limits.connections_per_client)
            assert annotations[prefix + "proxy-read-timeout"] == str(limits.request_timeout_seconds)


def _ingress_content_type_regex(ingress) -> re.Pattern[str]:
    snippet = ingress["metadata"]["annotations"][
        "nginx.ingress.kubernetes.io/configuration-snippet"
    ]
    found = re.search(r'if \(\$http_content_type !~\* "(.+)"\) \{ return 415; \}', snippet)
    assert found, snippet
    return re.compile(found.group(1), re.IGNORECASE)


def test_http_ingress_refuses_the_content_types_the_edge_refuses(all_renders) -> None:
    for render in renders_with(all_renders, "Ingress"):
        allowed = _ingress_content_type_regex(render.one("Ingress", "triton-http"))
        for content_type in HOSTILE_CONTENT_TYPES + ACCEPTED_CONTENT_TYPES:
            assert bool(allowed.search(content_type)) == edge.content_type_allowed(content_type), (
                content_type
            )


def test_grpcroute_routes_only_the_public_methods(all_renders) -> None:
    for render in renders_with(all_renders, "GRPCRoute"):
        route = render.one("GRPCRoute", "triton-grpc")
        methods = {
            f"/{m['method']['service']}/{m['method']['method']}"
            for rule in route["spec"]["rules"]
            for m in rule["matches"]
        }
        assert methods == edge.public_grpc_paths(), render.name
        assert "/inference.GRPCInferenceService/ModelStreamInfer" not in methods


def test_gateway_policies_carry_the_edge_limits(renders_by_name, limits) -> None:
    envoy = renders_by_name["component:gateway-limits-envoy"].one("BackendTrafficPolicy")
    assert envoy["spec"]["requestBuffer"]["limit"] == "8Mi"
    assert limits.max_body_bytes == 8 * 2**20  # Envoy's 8Mi is nginx's 8m
    assert {t["name"] for t in envoy["spec"]["targetRefs"]} == {"triton-http", "triton-grpc"}
    idle = envoy["spec"]["timeout"]["http"]["connectionIdleTimeout"]
    assert idle == f"{limits.idle_timeout_seconds}s"
    nginx = renders_by_name["component:gateway-limits-nginx"].of_kind("ClientSettingsPolicy")
    assert {p["spec"]["targetRef"]["name"] for p in nginx} == {"triton-http", "triton-grpc"}
    for policy in nginx:
        assert policy["spec"]["body"]["maxSize"] == limits.max_body_nginx
        assert policy["spec"]["body"]["timeout"] == f"{limits.client_body_timeout_seconds}s"
        assert policy["spec"]["keepAlive"]["timeout"]["server"] == f"{limits.idle_timeout_seconds}s"


def test_gateway_policies_match_their_crd_schemas(all_renders, renders_by_name) -> None:
    kinds = {r["kind"] for render in all_renders for r in render.resources}
    assert {"BackendTrafficPolicy", "ClientSettingsPolicy"} <= kinds
    assert validation.validate_schema_kinds_in(all_renders) == []
    # And the check is not vacuous: a misspelt field and a malformed duration are refused.
    policy = copy.deepcopy(
        renders_by_name["component:gateway-limits-envoy"].one("BackendTrafficPolicy")
    )
    policy["spec"]["requestBuffer"]["maxSize"] = "8Mi"
    policy["spec"]["timeout"]["http"]["requestTimeout"] = "60 seconds"
    problems = validation.validate_against_crd_schema(policy)
    assert any("maxSize" in p for p in problems), problems
    assert any("requestTimeout" in p for p in problems), problems


def _allowed_source(peer: dict) -> bool:
    namespaces = peer.get("namespaceSelector", {}).get("matchLabels", {})
    if "podSelector" in peer:
        return not namespaces and peer["podSelector"].get("matchLabels") == PERF_JOB_PODS
    if namespaces.get("kubernetes.io/metadata.name") in PROXY_NAMESPACES:
        return True
    return namespaces == {CLIENT_NAMESPACE_LABEL: "true"}


def test_inference_ports_are_open_only_to_proxies_and_declared_clients(all_renders) -> None:
    for render in all_renders:
        for policy in render.of_kind("NetworkPolicy"):
            for rule in policy["spec"].get("ingress", []):
                ports = {p["port"] for p in rule.get("ports", [])}
                if not ports & {"http", "grpc", 8000, 8001} and ports:
                    continue
                assert rule.get("from"), (render.name, policy["metadata"]["name"], "open to all")
                for peer in rule["from"]:
                    assert _allowed_source(peer), (render.name, policy["metadata"]["name"], peer)
