"""The cluster path with the official `kubernetes` client and its API objects.

No cluster runs here: a stand-in API server (tests/fakes/kube_api.py) answers the client over HTTP
with V1Deployment and V1PodList objects and forwards pod-proxy requests to the real local Triton.
On the real API server, tests/e2e/test_publish_rollout.py publishes through the publisher's
ServiceAccount; this stand-in stays for the cases a real cluster does not show on demand (one
replica unreachable mid-rollout, which rolls every replica back) and for the pod states that
count as ready.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from inference_tools import cli
from inference_tools.publishing.kubernetes_replicas import (
    deployment_replicas,
    label_selector,
    pod_is_ready,
)
from inference_tools.publishing.publisher import PublishError, publish
from inference_tools.publishing.sources import read_model_source
from inference_tools.publishing.stores import LocalFolderStore
from kubernetes import client

from tests.fakes.kube_api import FakeKubeApi, triton_deployment, triton_pod
from tests.publishing.load import infer_once
from tests.publishing.models import scaler_folder, tree_digest
from tests.publishing.servers import ADMIN_KEY

NAMESPACE = "inference"
TOKEN = "publisher-token"


def test_label_selector_from_match_labels_and_expressions():
    selector = client.V1LabelSelector(
        match_labels={"b": "2", "a": "1"},
        match_expressions=[
            client.V1LabelSelectorRequirement(key="tier", operator="In", values=["x", "y"]),
            client.V1LabelSelectorRequirement(key="canary", operator="DoesNotExist"),
        ],
    )
    assert label_selector(selector) == "a=1,b=2,tier in (x,y),!canary"
    with pytest.raises(ValueError, match="empty"):
        label_selector(client.V1LabelSelector())


def test_only_running_ready_pods_that_are_not_terminating_count_as_ready():
    assert pod_is_ready(triton_pod("a", ready=True))
    assert not pod_is_ready(triton_pod("b", ready=False))
    assert not pod_is_ready(triton_pod("c", ready=True, terminating=True))
    pending = triton_pod("d", ready=True)
    pending.status.phase = "Pending"
    assert not pod_is_ready(pending)


@pytest.fixture
def fake_api(store_server) -> Iterator[FakeKubeApi]:
    api = FakeKubeApi(
        namespace=NAMESPACE,
        deployment=triton_deployment(),
        pods=[
            triton_pod("triton-a", ready=True),
            triton_pod("triton-b", ready=True),
            triton_pod("triton-c", ready=False),
            triton_pod("triton-d", ready=True, terminating=True),
        ],
        pod_backends=dict.fromkeys(
            ["triton-a", "triton-b", "triton-c", "triton-d"], store_server.http_url
        ),
    )
    api.url = api.start()
    yield api
    api.stop()


def api_clients(url: str) -> tuple[client.AppsV1Api, client.CoreV1Api]:
    configuration = client.Configuration(host=url)
    configuration.api_key = {"BearerToken": TOKEN}
    configuration.api_key_prefix = {"BearerToken": "Bearer"}
    api_client = client.ApiClient(configuration)
    return client.AppsV1Api(api_client), client.CoreV1Api(api_client)


@pytest.mark.server
def test_every_ready_replica_is_switched_through_the_pod_proxy(
    tmp_path, store_dir, store_server, admin, fake_api
):
    replicas = deployment_replicas(*api_clients(fake_api.url), NAMESPACE, "triton")
    assert fake_api.selectors_asked == [
        "app.kubernetes.io/component=inference-server,app.kubernetes.io/name=triton"
    ]
    assert [(r.pod, r.ready) for r in replicas] == [
        ("triton-a", True),
        ("triton-b", True),
        ("triton-c", False),
        ("triton-d", False),
    ]
    endpoints = {r.endpoint.label: r.endpoint for r in replicas if r.ready}
    result = publish(
        [read_model_source(scaler_folder(tmp_path, "fleet", 2.0))],
        LocalFolderStore(store_dir),
        endpoints,
        admin=admin,
        report=lambda line: None,
    )
    assert result.serving == [("pod/triton-a", "fleet", "1"), ("pod/triton-b", "fleet", "1")]
    for pod in ("triton-a", "triton-b"):
        calls = [(r.method, r.path) for r in fake_api.proxied if r.pod == pod]
        assert ("POST", "v2/repository/models/fleet/load") in calls
        assert ("GET", "v2/models/fleet/versions/1/ready") in calls
        assert ("POST", "v2/models/fleet/versions/1/infer") in calls
    assert {r.pod for r in fake_api.proxied} == {"triton-a", "triton-b"}
    assert {r.port for r in fake_api.proxied} == {"8000"}
    assert all(r.authorization == f"Bearer {TOKEN}" for r in fake_api.proxied)
    repository_calls = [r for r in fake_api.proxied if "repository" in r.path]
    assert repository_calls and all(r.admin_key == ADMIN_KEY for r in repository_calls)


@pytest.mark.server
def test_one_unreachable_replica_rolls_every_replica_back(
    tmp_path, store_dir, store_server, admin, fake_api
):
    endpoints = {
        r.endpoint.label: r.endpoint
        for r in deployment_replicas(*api_clients(fake_api.url), NAMESPACE, "triton")
        if r.ready
    }
    publish(
        [read_model_source(scaler_folder(tmp_path, "fleet2", 1.0))],
        LocalFolderStore(store_dir),
        endpoints,
        admin=admin,
        report=lambda line: None,
    )
    before = tree_digest(store_dir / "fleet2")
    fake_api.pod_backends["triton-b"] = "127.0.0.1:9"  # nothing listens: the pod is unreachable
    with pytest.raises(PublishError, match=r"pod/triton-b: loading fleet2 failed \(HTTP 503\)"):
        publish(
            [read_model_source(scaler_folder(tmp_path / "v2", "fleet2", 7.0))],
            LocalFolderStore(store_dir),
            endpoints,
            admin=admin,
            report=lambda line: None,
        )
    assert tree_digest(store_dir / "fleet2") == before
    assert infer_once(store_server.http_url, "fleet2") == ("1", 1.0)


@pytest.mark.server
def test_cli_finds_the_replicas_from_a_kubeconfig(
    tmp_path, store_dir, store_server, fake_api, monkeypatch, capsys
):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        "apiVersion: v1\nkind: Config\n"
        f"clusters: [{{name: fake, cluster: {{server: '{fake_api.url}'}}}}]\n"
        f"users: [{{name: publisher, user: {{token: {TOKEN}}}}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: publisher}}]\n"
        "current-context: fake\n"
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    key_file = tmp_path / "admin-key"
    key_file.write_text(ADMIN_KEY + "\n")
    status = cli.main(
        [
            "publish",
            str(scaler_folder(tmp_path, "clustered", 3.0)),
            "--store",
            str(store_dir),
            "--kube-deployment",
            "triton",
            "--kube-namespace",
            NAMESPACE,
            "--admin-key-file",
            str(key_file),
        ]
    )
    captured = capsys.readouterr()
    output = captured.out
    assert status == 0, captured.err
    assert "pod/triton-a  clustered -> 1" in output
    assert "pod/triton-b  clustered -> 1" in output
    assert "pod/triton-c  not ready, not switched" in output
