"""The Triton pod in every render: restricted Pod Security, Triton's own security flags, shared
memory, and a shutdown that drains before Triton is signalled."""

from __future__ import annotations

import subprocess

import pytest
from inference_tools.exposure import ADMIN_API_CATEGORIES
from inference_tools.manifests import render as rendering
from inference_tools.manifests.render import Render
from inference_tools.paths import work_dir
from inference_tools.triton_runtime import prepare_runtime
from kubernetes.utils import parse_quantity

from tests.checkout import KUSTOMIZE_DIR, MODEL_REPOSITORY
from tests.kubernetes.pod import (
    UNRESOLVED,
    assert_restricted,
    command_option,
    container,
    deployment,
    flag,
    flag_values,
    pod_spec,
    quantity_bytes,
    triton_args,
)

pytestmark = pytest.mark.kubernetes
RESTRICTED_APIS = set(ADMIN_API_CATEGORIES)
KILL_MARGIN_S = 5  # between Triton's last possible exit and the kubelet's SIGKILL


def test_pods_meet_the_restricted_pod_security_standard(all_renders: list[Render]) -> None:
    for render in all_renders:
        assert_restricted(render, pod_spec(render))


def test_the_namespace_enforces_the_restricted_profile(all_renders: list[Render]) -> None:
    # The Namespace is its own kustomization: no release creates (or deletes) it.
    for render_ in all_renders:
        assert not render_.of_kind("Namespace"), render_.name
        assert deployment(render_)["metadata"]["namespace"] == "inference", render_.name
    namespace = rendering.render(KUSTOMIZE_DIR / "namespace").one("Namespace")
    assert namespace["metadata"]["name"] == "inference"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_image_is_pinned(all_renders: list[Render]) -> None:
    for render in all_renders:
        image = container(render)["image"]
        name, _, tag = image.rpartition(":")
        assert "@sha256:" in image or (name and tag and tag != "latest"), (render.name, image)


def test_triton_runs_with_its_security_guidance(all_renders: list[Render]) -> None:
    for render in all_renders:
        # Explicit, every model loaded at start: the preStop drain unloads them (exactly), and
        # the repository API that allows it is restricted below.
        assert flag(render, "--model-control-mode") == "explicit", render.name
        assert flag(render, "--load-model") == "*", render.name
        assert flag(render, "--strict-readiness") == "true", render.name
        assert "--disable-auto-complete-config" in triton_args(render), render.name
        for option in ("--http-restricted-api", "--grpc-restricted-protocol"):
            values = flag_values(render, option)
            assert len(values) == 1, (render.name, option)
            apis, _, header = values[0].partition(":")
            assert set(apis.split(",")) >= RESTRICTED_APIS, (render.name, option)
            key, _, value = header.partition("=")
            assert key == "x-triton-admin-key", render.name
            # The value is the admin Secret's, never a literal in the manifests.
            assert value == UNRESOLVED.format(name="triton-admin-key", key="header-value")


def test_every_flag_is_one_tritonserver_2_51_knows(all_renders: list[Render]) -> None:
    # The local server is the same 2.51.0 release as the image; its --help lists every option.
    runtime = prepare_runtime(work_dir())
    result = subprocess.run(
        [str(runtime.tritonserver), "--help"],
        capture_output=True,
        text=True,
        env=runtime.env,
        timeout=60,
        check=False,
    )
    options = {
        line.split()[0]
        for line in (result.stdout + result.stderr).splitlines()
        if line.startswith("  --")
    }
    assert "--http-restricted-api" in options
    for render in all_renders:
        for arg in triton_args(render):
            assert arg.split("=")[0] in options, (render.name, arg)


def test_model_repository_comes_from_the_image_or_a_component(all_renders: list[Render]) -> None:
    for render in all_renders:
        repository = flag(render, "--model-repository")
        if render.name in ("component:model-store-s3", "gpu-s3", "gpu-s3-publish"):
            assert repository.startswith("s3://"), render.name
        else:
            assert repository == "/models", render.name


def _cpu_limit(render: Render) -> float:
    return float(parse_quantity(container(render)["resources"]["limits"]["cpu"]))


def _python_backend_instances(render: Render) -> int:
    """Python-backend model instances of the pod: counts as triton-fit-instances fits them to
    the pod's CPU limit, the config's count (1 where unspecified) for models it leaves alone."""
    from inference_tools.model_config import read_model_config
    from pod_hooks.fit_instances import plan, whole_cpus

    fits = plan(
        whole_cpus(_cpu_limit(render)),
        encoder_on_gpu="gpu" in flag_values(render, "--model-config-name"),
    )
    total = 0
    for config_path in sorted(MODEL_REPOSITORY.glob("*/config.pbtxt")):
        config = read_model_config(config_path)
        if config.backend != "python":
            continue
        if config.name in fits:
            total += fits[config.name].count
            continue
        groups = list(config.instance_group) or [None]
        total += sum((g.count if g is not None and g.count else 1) for g in groups)
    return total


def test_shared_memory_volume_holds_the_python_backend_regions(all_renders: list[Render]) -> None:
    for render in all_renders:
        instances = _python_backend_instances(render)
        assert instances >= 1, render.name  # the tokenizer
        spec = pod_spec(render)
        volumes = {v["name"]: v for v in spec["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container(render)["volumeMounts"]}
        shm = volumes[mounts["/dev/shm"]]["emptyDir"]
        assert shm["medium"] == "Memory", render.name
        assert "emptyDir" in volumes[mounts["/tmp"]], render.name
        backend = dict(
            value.removeprefix("python,").split("=", 1)
            for value in flag_values(render, "--backend-config")
            if value.startswith("python,")
        )
        default_bytes = int(backend["shm-default-byte-size"])
        growth_bytes = int(backend["shm-growth-byte-size"])
        size_limit = quantity_bytes(shm["sizeLimit"])
        # Every instance's starting region, plus room for each to grow a few times.
        assert instances * (default_bytes + 4 * growth_bytes) <= size_limit, render.name
        # A memory-backed emptyDir is charged to the container's memory limit.
        memory_limit = quantity_bytes(container(render)["resources"]["limits"]["memory"])
        assert size_limit <= memory_limit / 2, render.name


def test_shutdown_drains_before_triton_is_signalled_within_the_grace_period(
    all_renders: list[Render],
) -> None:
    for render in all_renders:
        spec = pod_spec(render)
        hook = container(render)["lifecycle"]["preStop"]["exec"]["command"]
        assert hook[0].endswith("/triton-drain"), render.name
        propagation_s = float(command_option(hook, "--propagation-seconds"))
        deadline_s = float(command_option(hook, "--deadline-seconds"))
        metrics_url = command_option(hook, "--metrics-url")
        exit_timeout_s = int(flag(render, "--exit-timeout-secs"))
        assert metrics_url == f"http://127.0.0.1:{flag(render, '--metrics-port')}/metrics"
        # The exact drain unloads through the local HTTP port, with the container's admin key.
        assert (
            command_option(hook, "--http-url") == f"http://127.0.0.1:{flag(render, '--http-port')}"
        )
        env = {e["name"] for e in container(render).get("env", [])}
        assert "TRITON_ADMIN_KEY" in env, render.name
        assert 0 < propagation_s < deadline_s, render.name
        assert exit_timeout_s > 0, render.name
        assert deadline_s + exit_timeout_s + KILL_MARGIN_S <= spec["terminationGracePeriodSeconds"]
        strategy = deployment(render)["spec"]["strategy"]
        assert strategy["rollingUpdate"]["maxUnavailable"] == 0, render.name
        assert strategy["rollingUpdate"]["maxSurge"] >= 1, render.name
