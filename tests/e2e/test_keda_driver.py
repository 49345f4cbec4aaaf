"""KEDA's driver without a cluster (so it runs in `make test`): the release's Services become
selector-less ones routed to a host port, the APIService and webhooks get the CA bundle, the
certificate names the three Services for serving and mutual TLS, each process gets the
release's arguments and environment, and a private /etc/hosts names cluster Services for one
process only."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path

import pytest
from kubecluster import host_names, keda
from kubecluster.build import BuildError, go_binary
from kubecluster.layout import BRIDGE_ADDRESS
from kubecluster.pki import ensure_own_ca_cert

# Shaped as the release's config/manager/service.yaml and config/webhooks/validation_webhooks.yaml.
OPERATOR_SERVICE = {
    "apiVersion": "v1", "kind": "Service",
    "metadata": {"name": "keda-operator", "namespace": "keda",
                 "labels": {"app.kubernetes.io/name": "keda-operator"}},
    "spec": {"ports": [{"name": "metricsservice", "port": 9666, "targetPort": 9666},
                       {"name": "metrics", "port": 8080, "targetPort": 8080}],
             "selector": {"app": "keda-operator"}},
}  # fmt: skip
WEBHOOKS = {
    "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
    "metadata": {"name": "keda-admission"},
    "webhooks": [{"name": name, "clientConfig": {"service": {
        "name": "keda-admission-webhooks", "namespace": "keda", "path": f"/validate-{name}"}}}
        for name in ("vscaledobject.kb.io", "vscaledjob.kb.io")],
}  # fmt: skip


def test_a_release_service_routes_its_served_port_to_the_host_process() -> None:
    service, endpoint_slice = keda.routed_to_host(OPERATOR_SERVICE, "metricsservice", 40123)
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"] == [
        {"name": "metricsservice", "port": 9666, "targetPort": 40123, "protocol": "TCP"}
    ]
    assert service["metadata"]["labels"] == OPERATOR_SERVICE["metadata"]["labels"]
    assert endpoint_slice["metadata"]["labels"]["kubernetes.io/service-name"] == "keda-operator"
    assert endpoint_slice["metadata"]["namespace"] == "keda"
    assert endpoint_slice["endpoints"] == [
        {"addresses": [BRIDGE_ADDRESS], "conditions": {"ready": True}}
    ]
    assert endpoint_slice["ports"] == [{"name": "metricsservice", "port": 40123,
                                        "protocol": "TCP"}]  # fmt: skip
    # The release's document itself is left as it was.
    assert OPERATOR_SERVICE["spec"]["selector"] == {"app": "keda-operator"}


def test_prometheus_operated_is_routed_to_the_host_prometheus() -> None:
    service, endpoint_slice = keda.prometheus_service(39090)
    assert (service["metadata"]["namespace"], service["metadata"]["name"]) == (
        "monitoring", "prometheus-operated",
    )  # fmt: skip
    assert service["spec"]["ports"][0]["port"] == 9090
    assert service["spec"]["ports"][0]["targetPort"] == 39090
    assert endpoint_slice["ports"][0]["port"] == 39090


def test_the_ca_bundle_goes_into_every_webhook_and_the_apiservice() -> None:
    bundle = b"-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n"
    webhooks = keda.with_ca_bundle(WEBHOOKS, bundle)
    assert [base64.b64decode(w["clientConfig"]["caBundle"]) for w in webhooks["webhooks"]] == [
        bundle,
        bundle,
    ]
    assert webhooks["webhooks"][0]["clientConfig"]["service"]["name"] == "keda-admission-webhooks"
    api_service = keda.with_ca_bundle(
        {"kind": "APIService", "spec": {"group": "external.metrics.k8s.io"}}, bundle
    )
    assert base64.b64decode(api_service["spec"]["caBundle"]) == bundle
    with pytest.raises(ValueError):
        keda.with_ca_bundle({"kind": "Service", "spec": {}}, bundle)


def test_cluster_names_cover_both_service_domains() -> None:
    names = keda.cluster_names({("keda", "keda-operator"): "10.96.0.20",
                                ("monitoring", "prometheus-operated"): "10.96.0.21"})  # fmt: skip
    assert names == {
        "keda-operator.keda.svc": "10.96.0.20",
        "keda-operator.keda.svc.cluster.local": "10.96.0.20",
        "prometheus-operated.monitoring.svc": "10.96.0.21",
        "prometheus-operated.monitoring.svc.cluster.local": "10.96.0.21",
    }


def test_each_process_runs_with_the_releases_settings(tmp_path: Path) -> None:
    binaries = {name: tmp_path / name for name in keda.COMPONENTS}
    ports = {"grpc": 1, "metrics-server": 2, "webhooks": 3, "metrics-server-metrics": 4,
             "operator-metrics": 5, "operator-health": 6, "webhooks-metrics": 7,
             "webhooks-health": 8}  # fmt: skip
    commands = keda.commands(binaries, tmp_path / "certs", tmp_path / "kubeconfig", ports)
    operator = commands[keda.OPERATOR]
    assert f"--metrics-service-bind-address={BRIDGE_ADDRESS}:1" in operator
    assert f"--cert-dir={tmp_path / 'certs'}" in operator
    assert not any(a.startswith("--enable-cert-rotation") for a in operator)
    server = commands[keda.METRICS_SERVER]
    # No --metrics-service-address: the default names the operator's Service, which the
    # private /etc/hosts resolves.
    assert not any(a.startswith("--metrics-service-address") for a in server)
    for flag in ("lister", "authentication", "authorization"):
        assert f"--{flag}-kubeconfig={tmp_path / 'kubeconfig'}" in server
    assert f"--bind-address={BRIDGE_ADDRESS}" in server and "--secure-port=2" in server
    assert "--port=3" in commands[keda.WEBHOOKS]
    env = keda.environment(tmp_path / "kubeconfig")
    assert env["WATCH_NAMESPACE"] == "" and env["POD_NAMESPACE"] == "keda"
    assert env["KEDA_CLUSTER_OBJECT_NAMESPACE"] == "keda"


def test_the_certificate_serves_the_three_services_and_is_a_client_too(tmp_path: Path) -> None:
    folder = ensure_own_ca_cert(tmp_path / "certs", "keda-test-ca", keda.certificate_names())
    text = subprocess.run(
        ["openssl", "x509", "-in", str(folder / "tls.crt"), "-noout", "-text"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    for service in keda.COMPONENTS:
        assert f"DNS:{service}.keda.svc.cluster.local" in text
    assert f"IP Address:{BRIDGE_ADDRESS}" in text
    assert "TLS Web Server Authentication, TLS Web Client Authentication" in text
    verified = subprocess.run(
        ["openssl", "verify", "-CAfile", str(folder / "ca.crt"), str(folder / "tls.crt")],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr


def test_hosts_text_keeps_the_machines_entries() -> None:
    names = {"b.svc": "10.0.0.2", "a.svc": "10.0.0.1"}
    text = host_names.hosts_text("127.0.0.1\tlocalhost\n", names)
    assert text.splitlines()[0] == "127.0.0.1\tlocalhost"
    assert text.splitlines()[-2:] == ["10.0.0.1\ta.svc", "10.0.0.2\tb.svc"]


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root")
def test_a_private_hosts_file_is_seen_by_that_process_only(tmp_path: Path) -> None:
    machine_hosts = host_names.SYSTEM_HOSTS.read_text()
    hosts = host_names.write_hosts(tmp_path / "hosts", {"prometheus-operated.monitoring.svc":
                                                        "10.96.0.99"})  # fmt: skip
    # getent resolves through NSS (`hosts: files dns`), as Go's resolver does from the file.
    inside = subprocess.run(
        ["getent", "hosts", "prometheus-operated.monitoring.svc"], capture_output=True,
        text=True, check=False, preexec_fn=host_names.private_hosts(hosts),
    )  # fmt: skip
    assert inside.stdout.split() == ["10.96.0.99", "prometheus-operated.monitoring.svc"]
    assert host_names.SYSTEM_HOSTS.read_text() == machine_hosts


def replace_pins(go_mod: str) -> dict[str, str]:
    """`module => module version` lines of a go.mod's replace block."""
    block = go_mod.split("replace (", 1)[1].split(")", 1)[0]
    pins = {}
    for line in block.splitlines():
        parts = line.split()
        if "=>" in parts and not line.strip().startswith("//"):
            pins[parts[0]] = " ".join(parts[parts.index("=>") + 1 :])
    return pins


def _has_go() -> bool:
    try:
        go_binary()
    except BuildError:
        return False
    return True


# Outside CI a machine without Go skips it (make test needs no Go otherwise); CI has Go for
# make e2e, so there it runs.
@pytest.mark.skipif(
    not _has_go() and not os.environ.get("CI"),
    reason="reads the release's go.mod through `go mod download`",
)
def test_the_build_module_restates_the_releases_own_pins() -> None:
    """A dependency's replace directives do not apply to the module that builds it: without the
    release's own pins here, its Kubernetes libraries would be v0.36 instead of v0.35."""
    ours = replace_pins((keda.FOLDER / "go.mod").read_text())
    release = replace_pins((keda.release_dir() / "go.mod").read_text())
    assert ours == release
    assert ours["k8s.io/client-go"].startswith("k8s.io/client-go v0.35.")
