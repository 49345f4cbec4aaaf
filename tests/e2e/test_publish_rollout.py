"""`make publish-model` against the real API server, as the publisher's ServiceAccount: a team's
release (written by `inference-tools release-overlay`, beside the default one in `inference`)
serves `digits` from an S3 model store (moto_server on the node's bridge address, which the
pods reach as a cluster's pods reach a bucket); a new version is published to the store and
rolled out to every replica through the API server's pod proxy, and serves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from inference_tools.local_server import free_port
from inference_tools.paths import MODEL_REPOSITORY
from inference_tools.subprocesses import answers, wait_until_ready
from kubecluster.kubeapi import KubeApi
from kubecluster.layout import BRIDGE_ADDRESS

from tests.checkout import CHECKOUT, KUSTOMIZE_DIR
from tests.e2e.conftest import ADMIN_KEY, LOCAL_OVERLAYS, NAMESPACE, Kubectl, wait_for
from tests.e2e.test_readiness import pod_ready

pytestmark = pytest.mark.e2e

RELEASE = "team-p"
MODEL = "digits"
BUCKET = "models"
PREFIX = "repository"
AWS = {
    "AWS_ACCESS_KEY_ID": "e2e",
    "AWS_SECRET_ACCESS_KEY": "e2e",
    "AWS_DEFAULT_REGION": "us-east-1",
}
START_TIMEOUT_SECONDS = 420


@pytest.fixture
def store() -> Iterator[str]:
    """An S3 server on the node's bridge address, holding a repository of `digits` version 1."""
    port = free_port()
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", BRIDGE_ADDRESS, "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://{BRIDGE_ADDRESS}:{port}"
    try:
        problem = wait_until_ready(lambda: answers(endpoint), process, 30, interval_s=0.2)
        assert problem is None, f"moto_server did not start: {problem}"
        s3 = boto3.session.Session(
            aws_access_key_id=AWS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=AWS["AWS_SECRET_ACCESS_KEY"],
            region_name=AWS["AWS_DEFAULT_REGION"],
        ).client("s3", endpoint_url=endpoint)
        s3.create_bucket(Bucket=BUCKET)
        for path in sorted((MODEL_REPOSITORY / MODEL).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                key = f"{PREFIX}/{path.relative_to(MODEL_REPOSITORY).as_posix()}"
                s3.upload_file(str(path), BUCKET, key)
        yield f"s3://{endpoint}/{BUCKET}/{PREFIX}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def s3_release(
    kubectl: Kubectl, monitoring_crds: list[str], store: str, tmp_path: Path
) -> Iterator[str]:
    """The team's release, its pods reading `store`; deleted afterwards."""
    served = tmp_path / "cpu-s3"
    served.mkdir()
    (served / "kustomization.yaml").write_text(json.dumps({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        "resources": [os.path.relpath(LOCAL_OVERLAYS / "cpu", served)],
        "components": [os.path.relpath(KUSTOMIZE_DIR / "components" / "model-store-s3", served)],
    }))  # fmt: skip
    release = tmp_path / RELEASE
    subprocess.run(
        [str(Path(sys.executable).parent / "inference-tools"), "release-overlay",
         "--release", RELEASE, "--namespace", NAMESPACE, "--base", str(served),
         "--out", str(release), "--shares-namespace", "--model-repository", store],
        check=True, cwd=CHECKOUT,
    )  # fmt: skip
    kubectl.run(
        "create", "secret", "generic", "triton-s3-credentials", f"--namespace={NAMESPACE}",
        f"--from-literal=AWS_ACCESS_KEY_ID={AWS['AWS_ACCESS_KEY_ID']}",
        f"--from-literal=AWS_SECRET_ACCESS_KEY={AWS['AWS_SECRET_ACCESS_KEY']}",
    )  # fmt: skip
    try:
        kubectl.run("apply", "--server-side", "-k", str(release))
        yield f"{RELEASE}-triton"
    finally:
        kubectl.run("delete", "-k", str(release), "--wait=true", "--timeout=120s", check=False)
        kubectl.run("delete", "secret", "triton-s3-credentials", f"--namespace={NAMESPACE}",
                    check=False)  # fmt: skip


def release_pods(api: KubeApi) -> list[dict]:
    selector = f"app.kubernetes.io/instance={RELEASE}"
    return list(api.get(f"/api/v1/namespaces/{NAMESPACE}/pods?labelSelector={selector}")["items"])


def served_version(address: str) -> str:
    """The version of `digits` that answers an inference on the pod's own port."""
    import numpy as np
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(f"{address}:8000")
    try:
        pixels = httpclient.InferInput("PIXELS", [1, 64], "FP32")
        pixels.set_data_from_numpy(np.ones((1, 64), np.float32))
        return str(client.infer(MODEL, [pixels]).get_response()["model_version"])
    finally:
        client.close()


def test_a_published_version_rolls_out_to_the_release_and_serves(
    api: KubeApi, s3_release: str, store: str, publisher_kubeconfig: Path, tmp_path: Path
) -> None:
    started = time.monotonic()
    pod = wait_for("the S3 release's pod ready",
                   lambda: next((p for p in release_pods(api) if pod_ready(p)), None),
                   timeout=START_TIMEOUT_SECONDS)  # fmt: skip
    ready_after = time.monotonic() - started
    address = pod["status"]["podIP"]
    assert served_version(address) == "1"

    model = tmp_path / MODEL
    shutil.copytree(MODEL_REPOSITORY / MODEL, model, ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, **AWS, TRITON_ADMIN_KEY=ADMIN_KEY, KUBECONFIG=str(publisher_kubeconfig))
    published_at = time.monotonic()
    result = subprocess.run(
        ["make", "--no-print-directory", "publish-model", f"MODEL={model}", f"STORE={store}",
         f"KUBE_DEPLOYMENT={s3_release}", f"KUBE_NAMESPACE={NAMESPACE}"],
        cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    publish_s = time.monotonic() - published_at
    assert result.returncode == 0, result.stdout + result.stderr
    ready = [p for p in release_pods(api) if pod_ready(p)]
    versions = {p["metadata"]["name"]: served_version(p["status"]["podIP"]) for p in ready}
    print(
        f"\nrelease {RELEASE} (S3 store {store}): ready after {ready_after:.0f} s serving "
        f"{MODEL} 1; make publish-model as the publisher's ServiceAccount took {publish_s:.0f} s; "
        f"served versions now {versions}\n{result.stdout.strip()[-600:]}"
    )
    assert ready and set(versions.values()) == {"2"}, versions
