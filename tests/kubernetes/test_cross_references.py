"""The rendered resources agree with each other, in every overlay and component.

A cluster would reveal each of these mistakes only at run time (a probe on a port the container
does not have, a selector that selects nothing, a Secret nobody creates); here the rendered text
is checked instead.
"""

from __future__ import annotations

from typing import Any

import pytest
from inference_tools.manifests.render import Render

from tests.checkout import CHECKOUT
from tests.kubernetes.pod import (
    container,
    deployment,
    flag,
    http_guard,
    labels_match,
    pod_spec,
    triton_args,
)

pytestmark = pytest.mark.kubernetes
EXPECTED_PORTS = {"http": 8000, "grpc": 8001, "metrics": 8002}
# Triton's own HTTP endpoint, on loopback behind the HTTP guard that owns the pod's port 8000.
TRITON_HTTP_PORT = 8003
KUBERNETES_DOC = CHECKOUT / "docs" / "kubernetes.md"
# Secrets the deployer creates (never committed); each is explained in docs/kubernetes.md.
USER_PROVIDED_SECRETS = {
    "triton-admin-key",
    "triton-s3-credentials",
    "triton-tls",
    "triton-grpc-tls",
}


def _pod_labels(render: Render) -> dict[str, str]:
    return deployment(render)["spec"]["template"]["metadata"]["labels"]


def _container_ports(render: Render) -> dict[str, int]:
    """The pod's named ports: Triton's and its HTTP guard's."""
    containers = (container(render), http_guard(render))
    return {p["name"]: p["containerPort"] for c in containers for p in c["ports"]}


def _services_for_pods(render: Render) -> list[dict[str, Any]]:
    labels = _pod_labels(render)
    return [
        s
        for s in render.of_kind("Service")
        if s["spec"].get("selector")
        and labels_match({"matchLabels": s["spec"]["selector"]}, labels)
    ]


def test_container_ports_are_named_and_match_triton_flags(all_renders: list[Render]) -> None:
    for render in all_renders:
        assert _container_ports(render) == EXPECTED_PORTS, render.name
        for name in ("grpc", "metrics"):
            assert flag(render, f"--{name}-port") == str(EXPECTED_PORTS[name]), (render.name, name)
        assert flag(render, "--http-port") == str(TRITON_HTTP_PORT), render.name
        assert flag(render, "--http-address") == "127.0.0.1", render.name
        # Left out, Triton's metrics address follows --http-address to loopback, out of
        # Prometheus's reach.
        assert flag(render, "--metrics-address") == "0.0.0.0", render.name
        guard_args = http_guard(render)["args"]
        assert f"--listen=0.0.0.0:{EXPECTED_PORTS['http']}" in guard_args, render.name
        assert f"--upstream=127.0.0.1:{TRITON_HTTP_PORT}" in guard_args, render.name


def test_probes_target_tritons_http_port_and_catch_a_dead_backend(
    all_renders: list[Render],
) -> None:
    for render in all_renders:
        triton = container(render)
        ports = _container_ports(render)
        startup, readiness, liveness = (
            triton[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")
        )
        # The kubelet resolves a named probe port in the probed container's own ports only (a
        # sidecar's name does not resolve, and the probe fails): a number, or Triton's own name.
        own_ports = {p["name"]: p["containerPort"] for p in triton["ports"]}
        probe_port = startup["httpGet"]["port"]
        assert own_ports.get(probe_port, probe_port) == ports["http"], render.name
        assert startup["httpGet"]["path"] == "/v2/health/ready"
        # Readiness and liveness are canary inferences (triton-probe): Triton's own health
        # endpoints stay 200 with a dead Python-backend stub.
        http_url = f"--url=http://127.0.0.1:{ports['http']}"
        for kind, probe in (("readinessProbe", readiness), ("livenessProbe", liveness)):
            command = probe["exec"]["command"]
            assert command[0].endswith("/triton-probe"), (render.name, kind)
            assert http_url in command, (render.name, kind, command)
            deadline = next(a for a in command if a.startswith("--timeout-seconds="))
            assert float(deadline.split("=")[1]) < probe["timeoutSeconds"], (render.name, kind)
        assert "--check-ready" in readiness["exec"]["command"], render.name
        # Model loading may take minutes; liveness only starts once the startup probe passed.
        assert startup["periodSeconds"] * startup["failureThreshold"] >= 300, render.name
        assert "initialDelaySeconds" not in liveness, render.name


def test_services_select_the_pods_and_target_named_container_ports(
    all_renders: list[Render],
) -> None:
    for render in all_renders:
        ports = _container_ports(render)
        services = _services_for_pods(render)
        assert services == render.of_kind("Service"), f"{render.name}: a Service selects nothing"
        main = render.one("Service", "triton")
        assert {p["name"]: p["port"] for p in main["spec"]["ports"]} == EXPECTED_PORTS
        for service in services:
            for port in service["spec"]["ports"]:
                assert port["targetPort"] in ports, (render.name, service["metadata"]["name"])
                assert ports[port["targetPort"]] == EXPECTED_PORTS[port["name"]]


def test_disruption_budget_and_network_policies_select_the_pods(
    all_renders: list[Render],
) -> None:
    for render in all_renders:
        labels = _pod_labels(render)
        budget = render.one("PodDisruptionBudget", "triton")
        assert labels_match(budget["spec"]["selector"], labels), render.name
        policies = render.of_kind("NetworkPolicy")
        assert policies, render.name
        for policy in policies:
            assert labels_match(policy["spec"]["podSelector"], labels), (render.name, policy)


def test_metrics_port_is_open_only_to_the_monitoring_namespace(all_renders: list[Render]) -> None:
    monitoring_only = [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    for render in all_renders:
        container_ports = _container_ports(render)
        for policy in render.of_kind("NetworkPolicy"):
            for rule in policy["spec"].get("ingress", []):
                ports = {p["port"] for p in rule.get("ports", [])}
                assert ports <= set(container_ports), (render.name, ports)
                if not rule.get("ports") or "metrics" in ports or 8002 in ports:
                    assert rule.get("from") == monitoring_only, (render.name, rule)


def test_no_route_or_ingress_reaches_the_metrics_port(all_renders: list[Render]) -> None:
    for render in all_renders:
        service_ports = {
            s["metadata"]["name"]: {p["name"]: p["port"] for p in s["spec"]["ports"]}
            for s in render.of_kind("Service")
        }
        targets = []
        for kind in ("HTTPRoute", "GRPCRoute"):
            for route in render.of_kind(kind):
                for rule in route["spec"]["rules"]:
                    targets += [(b["name"], b["port"]) for b in rule["backendRefs"]]
        for ingress in render.of_kind("Ingress"):
            for rule in ingress["spec"]["rules"]:
                for path in rule["http"]["paths"]:
                    service = path["backend"]["service"]
                    targets.append(
                        (service["name"], service["port"].get("name") or service["port"]["number"])
                    )
        for service, port in targets:
            assert service in service_ports, (render.name, service)
            named = service_ports[service]
            assert port in named or port in named.values(), (render.name, service, port)
            assert port not in ("metrics", named.get("metrics")), (render.name, service, port)


def test_http_and_grpc_routes_use_disjoint_hostnames(all_renders: list[Render]) -> None:
    # On one listener, a GRPCRoute and an HTTPRoute with intersecting hostnames: one is rejected.
    for render in all_renders:
        http_hosts = {
            h for r in render.of_kind("HTTPRoute") for h in r["spec"].get("hostnames", [])
        }
        grpc_hosts = {
            h for r in render.of_kind("GRPCRoute") for h in r["spec"].get("hostnames", [])
        }
        if render.of_kind("GRPCRoute"):
            assert grpc_hosts and http_hosts, render.name
        assert not http_hosts & grpc_hosts, render.name


def test_grpc_ingress_speaks_grpc_to_the_grpc_port(all_renders: list[Render]) -> None:
    for render in all_renders:
        for ingress in render.of_kind("Ingress"):
            backend_ports = {
                p["backend"]["service"]["port"]["name"]
                for rule in ingress["spec"]["rules"]
                for p in rule["http"]["paths"]
            }
            protocol = (
                ingress["metadata"]
                .get("annotations", {})
                .get("nginx.ingress.kubernetes.io/backend-protocol")
            )
            assert (protocol == "GRPC") == (backend_ports == {"grpc"}), (render.name, ingress)
            if protocol == "GRPC":
                assert ingress["spec"].get("tls"), "ingress-nginx serves gRPC only over TLS"


def test_service_monitor_selects_the_service_and_names_its_metrics_port(
    all_renders: list[Render],
) -> None:
    checked = 0
    for render in all_renders:
        for monitor in render.of_kind("ServiceMonitor"):
            checked += 1
            selected = [
                s
                for s in render.of_kind("Service")
                if labels_match(monitor["spec"]["selector"], s["metadata"].get("labels", {}))
            ]
            assert [s["metadata"]["name"] for s in selected] == ["triton"], render.name
            port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
            assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
            assert "metrics" in port_names
            assert monitor["metadata"]["namespace"] == selected[0]["metadata"]["namespace"]
    assert checked, "no render has a ServiceMonitor"


def test_alert_rules_select_the_job_the_service_monitor_creates(all_renders: list[Render]) -> None:
    # Without jobLabel, the Prometheus Operator names the job after the Service.
    for render in all_renders:
        if not render.of_kind("ServiceMonitor"):
            continue
        assert "jobLabel" not in render.one("ServiceMonitor")["spec"]
        service_name = render.one("Service", "triton")["metadata"]["name"]
        rules = [
            rule
            for r in render.of_kind("PrometheusRule")
            for g in r["spec"]["groups"]
            for rule in g["rules"]
        ]
        for rule in rules:
            if "job=" in rule["expr"]:
                assert f'job="{service_name}"' in rule["expr"], (render.name, rule["expr"])


def _referenced_secrets_and_config_maps(render: Render) -> set[tuple[str, str]]:
    refs: set[tuple[str, str]] = set()
    spec = pod_spec(render)
    for c in spec["containers"] + spec.get("initContainers", []):
        for var in c.get("env", []):
            source = var.get("valueFrom", {})
            if "secretKeyRef" in source:
                refs.add(("Secret", source["secretKeyRef"]["name"]))
            if "configMapKeyRef" in source:
                refs.add(("ConfigMap", source["configMapKeyRef"]["name"]))
        for source in c.get("envFrom", []):
            if "secretRef" in source:
                refs.add(("Secret", source["secretRef"]["name"]))
            if "configMapRef" in source:
                refs.add(("ConfigMap", source["configMapRef"]["name"]))
    for volume in spec.get("volumes", []):
        if "secret" in volume:
            refs.add(("Secret", volume["secret"]["secretName"]))
        if "configMap" in volume:
            refs.add(("ConfigMap", volume["configMap"]["name"]))
    for ingress in render.of_kind("Ingress"):
        refs |= {("Secret", tls["secretName"]) for tls in ingress["spec"].get("tls", [])}
    for auth in render.of_kind("TriggerAuthentication"):
        refs |= {("Secret", ref["name"]) for ref in auth["spec"].get("secretTargetRef", [])}
    return refs


def test_every_secret_and_config_map_exists_or_is_documented_as_user_provided(
    all_renders: list[Render],
) -> None:
    doc = KUBERNETES_DOC.read_text()
    for secret in USER_PROVIDED_SECRETS:
        assert f"`{secret}`" in doc, f"docs/kubernetes.md does not explain Secret {secret}"
    for render in all_renders:
        present = {(r["kind"], r["metadata"]["name"]) for r in render.resources}
        for kind, name in _referenced_secrets_and_config_maps(render):
            if (kind, name) in present:
                continue
            assert kind == "Secret" and name in USER_PROVIDED_SECRETS, (render.name, kind, name)


def _requests_gpu(render: Render) -> bool:
    resources = container(render)["resources"]
    limit = resources.get("limits", {}).get("nvidia.com/gpu")
    request = resources.get("requests", {}).get("nvidia.com/gpu")
    assert limit == request, f"{render.name}: GPU request and limit must be equal"
    return limit is not None and int(limit) > 0


def test_gpu_overlays_request_a_gpu_and_use_the_gpu_model_configs(
    overlays: list[Render],
) -> None:
    for render in overlays:
        gpu_flag = flag(render, "--model-config-name") == "gpu"
        # Either both or neither: GPU configs on a CPU pod would fail to load (KIND_GPU).
        assert _requests_gpu(render) == gpu_flag, render.name
        if render.name.startswith("gpu"):
            assert gpu_flag, render.name
            tolerations = pod_spec(render)["tolerations"]
            assert {
                "key": "nvidia.com/gpu",
                "operator": "Exists",
                "effect": "NoSchedule",
            } in tolerations
        if render.name.startswith("cpu"):
            assert not gpu_flag, render.name
            assert "--model-config-name" not in " ".join(triton_args(render))


def test_no_replicas_where_an_autoscaler_owns_the_deployment(all_renders: list[Render]) -> None:
    for render in all_renders:
        target = deployment(render)
        autoscaled = [
            a
            for a in render.of_kind("HorizontalPodAutoscaler") + render.of_kind("ScaledObject")
            if a["spec"]["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
            and a["spec"]["scaleTargetRef"]["name"] == target["metadata"]["name"]
        ]
        if autoscaled:
            assert "replicas" not in target["spec"], (
                f"{render.name}: replicas fights the autoscaler"
            )
