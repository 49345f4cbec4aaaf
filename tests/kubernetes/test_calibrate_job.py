"""The in-cluster calibration Job (kustomize/jobs/calibrate) and its tools image (tools.Dockerfile):
valid, restricted, and running the real `calibrate` command on paths the image has."""

from __future__ import annotations

import copy
import re
import tomllib

import pytest
from inference_tools import cli
from inference_tools.manifests import validation
from inference_tools.manifests.render import Render
from packaging.specifiers import SpecifierSet

from tests.checkout import CHECKOUT, KUSTOMIZE_DIR, MODEL_REPOSITORY
from tests.kubernetes.pod import VARIABLE, assert_restricted, labels_match

pytestmark = pytest.mark.kubernetes
TOOLS_DOCKERFILE = CHECKOUT / "tools.Dockerfile"
# Where tools.Dockerfile puts this checkout's folders.
IMAGE_PATHS = {
    "/opt/scalable-inference-server/kustomize": KUSTOMIZE_DIR,
    "/opt/scalable-inference-server/model_repository": MODEL_REPOSITORY,
}


@pytest.fixture(scope="module")
def job(job_renders: list[Render]) -> Render:
    return next(r for r in job_renders if r.name == "job:calibrate")


def _container(job: Render) -> dict:
    return job.one("Job")["spec"]["template"]["spec"]["containers"][0]


def _settings(job: Render) -> dict[str, str]:
    (ref,) = _container(job)["envFrom"]
    config = job.one("ConfigMap", ref["configMapRef"]["name"])
    return config["data"]


def _argv(job: Render, settings: dict[str, str] | None = None) -> list[str]:
    """The container's command line after Kubernetes' $(VAR) expansion from its settings."""
    container = _container(job)
    values = settings if settings is not None else _settings(job)
    return [
        VARIABLE.sub(lambda m: values[m.group(1)], part)
        for part in container["command"] + container["args"]
    ]


def test_the_job_validates_like_the_overlays(job: Render) -> None:
    assert validation.validate_core(job) == []


def test_the_job_meets_the_restricted_pod_security_standard(job: Render) -> None:
    spec = job.one("Job")["spec"]["template"]["spec"]
    assert_restricted(job, spec)
    # Writes go to volumes: the working folder (perf_analyzer, Prometheus, the component) and /tmp.
    mounts = {m["mountPath"] for m in _container(job)["volumeMounts"]}
    assert {"/work", "/tmp"} <= mounts
    args = cli.build_parser().parse_args(_argv(job)[1:])
    assert str(args.component).startswith("/work/") and str(args.out_dir).startswith("/work/")
    # Relative defaults (`.work/`, the local Prometheus' data) land in the image's WORKDIR.
    assert re.search(r"^WORKDIR /work$", TOOLS_DOCKERFILE.read_text(), re.M)


def test_the_job_runs_calibrate_with_arguments_the_real_parser_takes(job: Render) -> None:
    argv = _argv(job)
    assert argv[0] == "inference-tools"
    args = cli.build_parser().parse_args(argv[1:])
    assert args.func.__module__.endswith("autoscaling.calibrate")
    assert args.objective_ms == float(_settings(job)["OBJECTIVE_MS"])
    # The remote path: the relabelled pod, scraped by the Job's own Prometheus.
    assert args.grpc_url == "triton-calibration:8001"
    assert args.metrics_url == "http://triton-calibration:8002/metrics"
    assert args.prometheus_url is None
    for option in (args.kustomization, args.model_repository):
        prefix = next(p for p in IMAGE_PATHS if str(option).startswith(p))
        in_checkout = IMAGE_PATHS[prefix] / str(option).removeprefix(prefix).lstrip("/")
        assert in_checkout.is_dir(), f"{option}: the image copies no such folder"
    assert (IMAGE_PATHS["/opt/scalable-inference-server/kustomize"] / "overlays").is_dir()


def test_a_setting_the_parser_refuses_is_caught(job: Render) -> None:
    # Guards the check above: a non-numeric objective must fail to parse.
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(_argv(job, {**_settings(job), "OBJECTIVE_MS": "fast"})[1:])


def test_the_job_reaches_only_the_relabelled_pod(job: Render, overlays: list[Render]) -> None:
    deployment = next(r for r in overlays if r.name == "gpu-keda").one("Deployment")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    relabelled = {**pod_labels, "app.kubernetes.io/component": "calibration"}
    service = job.one("Service", "triton-calibration")
    assert service["spec"]["clusterIP"] == "None"
    assert labels_match({"matchLabels": service["spec"]["selector"]}, relabelled)
    assert not labels_match({"matchLabels": service["spec"]["selector"]}, pod_labels)
    named_ports = {
        p["name"]
        for c in deployment["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= named_ports
    policy = job.one("NetworkPolicy", "triton-calibration")
    assert labels_match(policy["spec"]["podSelector"], relabelled)
    job_pod_labels = job.one("Job")["spec"]["template"]["metadata"]["labels"]
    (rule,) = policy["spec"]["ingress"]
    assert any(labels_match(peer["podSelector"], job_pod_labels) for peer in rule["from"])
    assert {p["port"] for p in rule["ports"]} == {"grpc", "metrics"}
    own = job.one("NetworkPolicy", "triton-calibrate")
    assert labels_match(own["spec"]["podSelector"], job_pod_labels)
    assert "ingress" not in own["spec"], "nothing needs to reach the Job"
    (to_pod, _dns) = own["spec"]["egress"]
    assert labels_match(to_pod["to"][0]["podSelector"], relabelled)


def test_the_restricted_check_catches_a_writable_root_filesystem(job: Render) -> None:
    broken = copy.deepcopy(job)
    spec = broken.one("Job")["spec"]["template"]["spec"]
    spec["containers"][0]["securityContext"]["readOnlyRootFilesystem"] = False
    with pytest.raises(AssertionError):
        assert_restricted(broken, spec)


def test_the_tools_image_runs_a_python_the_project_supports() -> None:
    project = tomllib.loads((CHECKOUT / "pyproject.toml").read_text())["project"]
    dockerfile = TOOLS_DOCKERFILE.read_text()
    (base,) = re.findall(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)[\w.-]*$", dockerfile, re.M)
    assert SpecifierSet(project["requires-python"]).contains(f"{base}.0")
    # Every stage builds on that image; the wheel it installs is this version's.
    assert set(re.findall(r"^FROM (\S+)", dockerfile, re.M)) == {"${PYTHON_IMAGE}"}
    wheel = f"scalable_inference_server-{project['version']}-py3-none-any.whl[calibrate]"
    assert wheel in dockerfile
    assert "calibrate" in project["optional-dependencies"]
    for path in IMAGE_PATHS:
        assert f" {path}/" in dockerfile, f"tools.Dockerfile copies nothing to {path}"


def test_the_job_runs_the_tools_image(job: Render) -> None:
    image = _container(job)["image"]
    assert image.split(":")[0].endswith("/scalable-inference-server-tools")
    assert "tools-image" in (CHECKOUT / "Makefile").read_text()
