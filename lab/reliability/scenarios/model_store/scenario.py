"""The S3 model store fails: during a publish, and when a server starts.

A real S3-protocol server (moto_server) holds the model repository; a local Triton serves it in
explicit model-control mode, as the Deployment does.

- During a publish: the store stops answering (SIGSTOP, so connections hang rather than being
  refused, the harder case) as the first file goes up. The publish must fail within its
  timeouts; the model must keep answering from the version loaded before; once the store is
  back (SIGCONT), the same publish run again must complete and the new version serve.
- At server start: Triton pointed at a store that is down must exit with an error that names
  the store, not hang (Kubernetes then restarts it with back-off and the pod stays unready).

The model published is the repository's own `tokenizer` (small: a Python model and its
tokenizer.json, built by `inference-tools build-models`).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.http as httpclient
from inference_tools.local_server import LocalTritonServer, ServerStartError, free_port, port_in_use
from inference_tools.paths import MODEL_REPOSITORY
from inference_tools.publishing.endpoints import HttpEndpoint
from inference_tools.publishing.publisher import PublishError, publish
from inference_tools.publishing.rollout import AdminAccess
from inference_tools.publishing.s3_store import S3Store
from inference_tools.publishing.sources import read_model_source
from inference_tools.subprocesses import wait_until_ready
from pod_hooks.model_roles import ADMIN_HEADER

from lab.reliability.report import ScenarioResult
from python_backend.contract import TEXT, TOKENIZER

MODEL = TOKENIZER
BUCKET = "models"
PREFIX = "repository"
ADMIN_KEY = "store-failure-admin"
# Credentials moto accepts; boto3 and Triton read them from the environment.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "reliability",
    "AWS_SECRET_ACCESS_KEY": "reliability",
    "AWS_DEFAULT_REGION": "us-east-1",
}
# A client that gives up quickly: the publish must fail in seconds, not in boto3's minutes.
STORE_TIMEOUTS = {"connect_timeout": 2, "read_timeout": 3, "retries": {"max_attempts": 2}}


@contextmanager
def moto_server() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        problem = wait_until_ready(
            lambda: port_in_use("127.0.0.1", port), process, 30, interval_s=0.1
        )
        if problem:
            raise RuntimeError(f"moto_server did not start: {problem}")
        yield f"http://127.0.0.1:{port}", process
    finally:
        os.kill(process.pid, signal.SIGCONT)
        process.terminate()
        process.wait(timeout=10)


def _client(endpoint: str, **config: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint, config=Config(**config) if config else None
    )


class PausingClient:
    """The store's S3 client, except that the first upload stops the S3 server first."""

    def __init__(self, client: Any, server_pid: int) -> None:
        self._client = client
        self._server_pid = server_pid
        self.paused_at: float | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def upload_file(self, *args: Any, **kwargs: Any) -> Any:
        if self.paused_at is None:
            os.kill(self._server_pid, signal.SIGSTOP)
            self.paused_at = time.monotonic()
        return self._client.upload_file(*args, **kwargs)


def model_answer(server: LocalTritonServer) -> str:
    """The version of the published model that answers a request (raises if none does)."""
    client = httpclient.InferenceServerClient(server.http_url)
    try:
        text = httpclient.InferInput(TEXT, [1, 1], "BYTES")
        text.set_data_from_numpy(np.array([[b"store failure"]], dtype=object))
        result = client.infer(MODEL, [text])
        return str(result.get_response()["model_version"])
    finally:
        client.close()


def _publish(folder: Path, store: S3Store, server: LocalTritonServer) -> Any:
    return publish(
        [read_model_source(folder)],
        store,
        {"local": HttpEndpoint(server.http_url)},
        smoke_test=False,
        admin=AdminAccess(ADMIN_HEADER, ADMIN_KEY),
        timeout_s=60.0,
        report=lambda line: None,
    )


def run(*, start_timeout_s: float = 180.0, work_dir: Path | None = None) -> ScenarioResult:
    saved_env = {key: os.environ.get(key) for key in AWS_ENV}
    os.environ.update(AWS_ENV)
    details: dict[str, Any] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="store-failure-") as scratch:
            folder = Path(scratch) / MODEL
            shutil.copytree(
                MODEL_REPOSITORY / MODEL, folder, ignore=shutil.ignore_patterns("__pycache__")
            )
            with moto_server() as (endpoint, moto):
                details.update(_during_publish(endpoint, moto, folder, work_dir))
            details.update(_at_start(start_timeout_s, work_dir))
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    passed = (
        details["publish_failed"]
        and details["served_while_down"] == details["version_before"]
        and details["rerun_version"] not in (None, details["version_before"])
        and details["start_error"] is not None
        and "S3" in details["start_error"]
    )
    return ScenarioResult(
        scenario="model store (S3) down",
        load="publishes of one model; a server start",
        faults="S3 server paused as a publish uploads; S3 server down at Triton's start",
        requests_sent=details["requests_sent"],
        requests_failed=details["requests_failed"],
        recovery_s=details["rerun_s"],
        passed=passed,
        notes=f"publish failed after {details['publish_failure_s']:.1f} s and served version "
        f"{details['served_while_down']} throughout; the rerun published version "
        f"{details['rerun_version']}. Start against a dead store: exit after "
        f"{details['start_failure_s']:.0f} s naming S3",
        details=details,
    )


def _during_publish(
    endpoint: str, moto: subprocess.Popen[bytes], folder: Path, work_dir: Path | None
) -> dict[str, Any]:
    url = f"s3://{endpoint}/{BUCKET}/{PREFIX}"
    setup = _client(endpoint)
    setup.create_bucket(Bucket=BUCKET)
    # Triton lists the repository at start-up: it must exist, if empty.
    setup.put_object(Bucket=BUCKET, Key=f"{PREFIX}/README.txt", Body=b"model repository")
    server = LocalTritonServer(
        url,
        work_dir=work_dir,
        env=AWS_ENV,
        extra_args=[
            "--model-control-mode=explicit",
            f"--http-restricted-api=model-repository:{ADMIN_HEADER}={ADMIN_KEY}",
        ],
    )
    server.start()
    sent = failed = 0
    try:
        first = _publish(folder, S3Store(url, client=_client(endpoint)), server)
        version_before = str(first.published[0][1])
        assert model_answer(server) == version_before

        pausing = PausingClient(_client(endpoint, **STORE_TIMEOUTS), moto.pid)
        started = time.monotonic()
        publish_failed = False
        try:
            _publish(folder, S3Store(url, client=pausing), server)
        except PublishError:
            publish_failed = True
        publish_failure_s = time.monotonic() - started
        # Still paused: the server keeps answering from what it loaded.
        served_while_down = None
        for _ in range(20):
            sent += 1
            try:
                served_while_down = model_answer(server)
            except Exception:
                failed += 1
        os.kill(moto.pid, signal.SIGCONT)

        rerun_started = time.monotonic()
        rerun = _publish(folder, S3Store(url, client=_client(endpoint)), server)
        rerun_s = time.monotonic() - rerun_started
        rerun_version = str(rerun.published[0][1])
        sent += 1
        assert model_answer(server) == rerun_version
    finally:
        server.stop()
    return {
        "version_before": version_before,
        "publish_failed": publish_failed,
        "publish_failure_s": publish_failure_s,
        "served_while_down": served_while_down,
        "rerun_version": rerun_version,
        "rerun_s": rerun_s,
        "requests_sent": sent,
        "requests_failed": failed,
    }


def _at_start(start_timeout_s: float, work_dir: Path | None) -> dict[str, Any]:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    server = LocalTritonServer(
        f"s3://{dead}/{BUCKET}/{PREFIX}",
        work_dir=work_dir,
        env=AWS_ENV,
        extra_args=["--model-control-mode=explicit"],
    )
    started = time.monotonic()
    error: str | None = None
    try:
        server.start(timeout_s=start_timeout_s)
    except ServerStartError as start_error:
        exited = server.process is not None and server.process.poll() is not None
        error = str(start_error).splitlines()[-1] if exited else None
    finally:
        server.stop(timeout_s=5)
    return {"start_error": error, "start_failure_s": time.monotonic() - started}
