"""The cluster tooling's own answers that need no cluster (so they run in `make test` too): a
failed build names the module and version, and the pod runner refuses what it cannot map."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubecluster.build import BuildError, ensure_binaries
from kubecluster.containers import _mount_script, probe_port
from kubecluster.image_map import UnmappableContainer, serving_image_map
from kubecluster.layout import ClusterLayout, pinned_versions
from kubecluster.monitoring import POD_NAME, host_config
from kubecluster.pod_spec import ContainerPlan, container_env, expand, plan_container

SERVING_IMAGE = "ghcr.io/example/scalable-inference-server:0.1.0"


def test_a_failed_build_names_the_module_and_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\necho 'go: module lookup disabled' >&2\nexit 1\n")
    fake_go.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    with pytest.raises(BuildError) as raised:
        ensure_binaries(ClusterLayout(tmp_path / "cluster"), log=False)
    message = str(raised.value)
    assert f"go.etcd.io/etcd/server/v3 {pinned_versions().etcd}" in message
    assert "module lookup disabled" in message


def pod(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "metadata": {"name": "p", "namespace": "n", "uid": "u"},
        "spec": {"securityContext": {"runAsUser": 10001}, "containers": [container]},
    }


def plan(container: dict[str, Any], tmp_path: Path) -> ContainerPlan:
    image_map = serving_image_map(tmp_path / "tritonserver" / "bin" / "tritonserver")
    return plan_container(pod(container), container, image_map, {}, lambda *_: {},
                          "10.244.0.9", "10.244.0.1", tmp_path)  # fmt: skip


def test_a_foreign_image_is_refused_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(UnmappableContainer, match="is not the serving image"):
        plan({"name": "web", "image": "nginx:1.27", "command": ["nginx"]}, tmp_path)


def test_an_image_path_without_a_local_counterpart_is_refused(tmp_path: Path) -> None:
    container = {"name": "triton", "image": SERVING_IMAGE, "command": ["/usr/bin/unknown-tool"]}
    with pytest.raises(UnmappableContainer, match="'/usr/bin/unknown-tool' is not a path"):
        plan(container, tmp_path)


def test_the_hooks_and_server_map_to_the_checkout(tmp_path: Path) -> None:
    image_map = serving_image_map(tmp_path / "tritonserver" / "bin" / "tritonserver")
    probe = image_map.map_path("/opt/scalable-inference-server/bin/triton-probe")
    assert probe is not None and probe.endswith("serving/pod_hooks/health_probe.py")
    assert image_map.map_argument("--model-repository=/models").endswith("/model_repository")


def test_variables_expand_as_kubernetes_expands_them() -> None:
    env = {"MODEL_REPOSITORY": "/models"}
    assert expand("--model-repository=$(MODEL_REPOSITORY)", env) == "--model-repository=/models"
    assert (
        expand("$(UNDEFINED) and $$(MODEL_REPOSITORY)", env)
        == "$(UNDEFINED) and $(MODEL_REPOSITORY)"
    )


def test_env_comes_from_configmaps_secrets_and_the_downward_api() -> None:
    objects = {
        ("configmaps", "settings"): {"data": {"MODEL_REPOSITORY": "/models"}},
        ("secrets", "admin"): {"data": {"header-value": "a2V5"}},  # "key"
    }
    container = {
        "name": "triton",
        "env": [
            {"name": "MODEL_REPOSITORY", "valueFrom": {"configMapKeyRef": {
                "name": "settings", "key": "MODEL_REPOSITORY"}}},
            {"name": "KEY", "valueFrom": {"secretKeyRef": {
                "name": "admin", "key": "header-value"}}},
            {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "ARGS", "value": "--repo=$(MODEL_REPOSITORY)"},
        ],
    }  # fmt: skip
    env = container_env(pod(container), container, lambda kind, name: objects[(kind, name)],
                        "10.244.0.9", "10.244.0.1")  # fmt: skip
    assert env["MODEL_REPOSITORY"] == "/models"
    assert env["KEY"] == "key"
    assert env["POD_IP"] == "10.244.0.9"
    assert env["ARGS"] == "--repo=/models"
    assert env["HOSTNAME"] == "p"


def test_a_sidecar_is_planned_and_a_probe_port_resolves_in_its_own_container_only(
    tmp_path: Path,
) -> None:
    guard = {
        "name": "http-guard", "image": SERVING_IMAGE, "restartPolicy": "Always",
        "command": ["/opt/scalable-inference-server/bin/triton-http-guard"],
        "ports": [{"name": "http", "containerPort": 8000}],
    }  # fmt: skip
    triton = {**guard, "name": "triton", "ports": [{"name": "metrics", "containerPort": 8002}]}
    del triton["restartPolicy"]
    guard_plan, triton_plan = plan(guard, tmp_path), plan(triton, tmp_path)
    assert guard_plan.sidecar and not triton_plan.sidecar
    assert probe_port("http", guard_plan) == 8000
    # The kubelet does not look into the sidecar's ports: Triton's probe on `http` fails.
    assert probe_port("http", triton_plan) is None
    assert probe_port("8000", triton_plan) == probe_port(8000, triton_plan) == 8000


def test_a_poststart_hook_is_refused(tmp_path: Path) -> None:
    container = {
        "name": "triton", "image": SERVING_IMAGE,
        "command": ["/opt/scalable-inference-server/bin/triton-http-guard"],
        "lifecycle": {"postStart": {"exec": {"command": ["true"]}}},
    }  # fmt: skip
    with pytest.raises(UnmappableContainer, match="postStart"):
        plan(container, tmp_path)


def test_the_operators_configuration_gets_what_a_pod_finds_in_cluster(tmp_path: Path) -> None:
    generated = {
        "global": {"external_labels": {"prometheus_replica": "$(POD_NAME)"}},
        "scrape_configs": [{"job_name": "serviceMonitor/inference/triton/0",
                            "kubernetes_sd_configs": [{"role": "endpoints"}]}],
    }  # fmt: skip
    config = host_config(generated, "https://127.0.0.1:6443", tmp_path / "ca", tmp_path / "t")
    assert config["global"]["external_labels"]["prometheus_replica"] == POD_NAME
    discovery = config["scrape_configs"][0]["kubernetes_sd_configs"][0]
    assert discovery["role"] == "endpoints"
    assert discovery["api_server"] == "https://127.0.0.1:6443"
    assert discovery["authorization"] == {"credentials_file": str(tmp_path / "t")}
    with pytest.raises(ValueError, match="NODE_NAME"):
        host_config({"global": {"external_labels": {"n": "$(NODE_NAME)"}}}, "", tmp_path, tmp_path)


def test_a_volume_over_the_checkouts_parent_does_not_hide_the_checkout(tmp_path: Path) -> None:
    """A checkout under /tmp (a CI clone) stays visible beneath the pod's /tmp emptyDir:
    without the bind back, the container's command is not found (exit 127)."""
    assert str(tmp_path).startswith("/tmp/")
    (tmp_path / "marker").write_text("still here\n")
    container = {
        "name": "triton", "image": SERVING_IMAGE,
        "command": ["/opt/scalable-inference-server/bin/triton-http-guard"],
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": {"readOnlyRootFilesystem": True},
    }  # fmt: skip
    spec = pod(container)
    spec["spec"]["volumes"] = [{"name": "tmp", "emptyDir": {"medium": "Memory"}}]
    image_map = serving_image_map(tmp_path / "tritonserver" / "bin" / "tritonserver")
    planned = plan_container(spec, container, image_map, {}, lambda *_: {},
                             "10.244.0.9", "10.244.0.1", tmp_path)  # fmt: skip
    assert str(tmp_path) in planned.host_paths
    # The server's whole folder (its backends beside its bin/), wherever it lies.
    elsewhere = serving_image_map(Path("/opt/local-triton/bin/tritonserver"))
    assert "/opt/local-triton" in plan_container(spec, container, elsewhere, {}, lambda *_: {},
        "10.244.0.9", "10.244.0.1", tmp_path).host_paths  # fmt: skip
    script = _mount_script(planned, "p") + f"\nexec /bin/cat {tmp_path / 'marker'}"
    shown = subprocess.run(
        ["/usr/bin/unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", script],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == "still here\n"
