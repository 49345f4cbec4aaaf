"""The S3 store against a local S3-protocol server (moto_server), and a Triton reading from it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from inference_tools.local_server import LocalTritonServer, free_port, port_in_use
from inference_tools.publishing.endpoints import HttpEndpoint
from inference_tools.publishing.publisher import publish, rollback
from inference_tools.publishing.s3_store import S3Location, S3Store
from inference_tools.publishing.sources import read_model_source
from inference_tools.publishing.stores import MANIFEST_FILE, StoreError, VersionExistsError

from tests.publishing.load import infer_once
from tests.publishing.models import ensemble_folder, python_folder, scaler_folder
from tests.publishing.servers import explicit_mode_args

# Credentials only moto accepts; boto3 and Triton both read them from the environment.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "publish-tests",
    "AWS_SECRET_ACCESS_KEY": "publish-tests",
    "AWS_DEFAULT_REGION": "us-east-1",
}
BUCKET = "models"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto_server.log"
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    saved = {key: os.environ.get(key) for key in AWS_ENV}
    try:
        deadline = time.monotonic() + 30
        while not port_in_use("127.0.0.1", port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "moto_server did not start"
            time.sleep(0.1)
        os.environ.update(AWS_ENV)
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        process.terminate()
        process.wait(timeout=10)


def test_s3_urls_in_both_spellings():
    plain = S3Location.parse("s3://bucket/a/b/")
    assert (plain.bucket, plain.prefix, plain.endpoint_url) == ("bucket", "a/b", None)
    assert plain.triton_url() == "s3://bucket/a/b"
    local = S3Location.parse("s3://http://127.0.0.1:9000/bucket/prefix")
    assert local.endpoint_url == "http://127.0.0.1:9000"
    assert local.triton_url() == "s3://http://127.0.0.1:9000/bucket/prefix"
    with pytest.raises(ValueError, match=r"'\.\.'"):
        S3Location.parse("s3://bucket/a/../b")


def test_large_files_go_up_in_verified_parts(tmp_path, s3_endpoint):
    store = S3Store(
        f"s3://{s3_endpoint}/{BUCKET}/multipart",
        multipart_threshold=5 * 1024 * 1024,
        multipart_chunk_size=5 * 1024 * 1024,
    )
    weights = tmp_path / "weights.bin"
    weights.write_bytes(os.urandom(11 * 1024 * 1024))
    store.upload_version("big", 1, {"weights.bin": weights})
    head = store.client.head_object(Bucket=BUCKET, Key="multipart/big/1/weights.bin")
    assert head["ETag"].endswith('-3"')  # 5 + 5 + 1 MiB: three parts
    assert store.version_folders("big") == [1]
    assert store.read_manifest("big", 1)["files"]["weights.bin"]["size"] == 11 * 1024 * 1024
    with pytest.raises(VersionExistsError):
        store.upload_version("big", 1, {"weights.bin": weights})


class CorruptingClient:
    """An S3 client whose uploads lose a byte on the way: what verification must catch."""

    def __init__(self, client) -> None:
        self._client = client

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_file(self, filename, bucket, key, **kwargs):
        data = Path(filename).read_bytes()[:-1]
        self._client.put_object(
            Bucket=bucket, Key=key, Body=data, Metadata=kwargs["ExtraArgs"]["Metadata"]
        )


def test_a_corrupted_upload_fails_verification_and_writes_no_manifest(tmp_path, s3_endpoint):
    real = S3Store(f"s3://{s3_endpoint}/{BUCKET}/corrupt")
    store = S3Store(f"s3://{s3_endpoint}/{BUCKET}/corrupt", client=CorruptingClient(real.client))
    model = scaler_folder(tmp_path, "scaler", 1.0) / "1" / "model.onnx"
    with pytest.raises(StoreError, match="failed verification"):
        store.upload_version("scaler", 1, {"model.onnx": model})
    assert real.read_manifest("scaler", 1) is None


@pytest.fixture(scope="module")
def s3_server(s3_endpoint) -> Iterator[LocalTritonServer]:
    # Created before Triton starts: it lists the repository at start-up.
    boto3.client("s3", endpoint_url=s3_endpoint).put_object(
        Bucket=BUCKET, Key="served/README.txt", Body=b"model repository"
    )
    server = LocalTritonServer(
        f"s3://{s3_endpoint}/{BUCKET}/served", extra_args=explicit_mode_args(), env=AWS_ENV
    )
    server.start(timeout_s=180)
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.server
def test_triton_loads_what_is_published_to_s3_and_rolls_back(
    tmp_path, s3_endpoint, s3_server, admin
):
    store = S3Store(f"s3://{s3_endpoint}/{BUCKET}/served")
    endpoints = {"local": HttpEndpoint(s3_server.http_url)}
    first = publish(
        [
            read_model_source(scaler_folder(tmp_path, "triple", 3.0)),
            read_model_source(python_folder(tmp_path, "add_two", 2.0)),
            read_model_source(ensemble_folder(tmp_path, "chain", "triple", "add_two")),
        ],
        store,
        endpoints,
        admin=admin,
        report=lambda line: None,
    )
    assert first.published == [("triple", 1), ("add_two", 1), ("chain", 1)]
    # S3 has no folders: the ensemble's version folder exists through its manifest object.
    listed = store.client.list_objects_v2(Bucket=BUCKET, Prefix="served/chain/")
    assert sorted(item["Key"] for item in listed["Contents"]) == [
        f"served/chain/1/{MANIFEST_FILE}",
        "served/chain/config.pbtxt",
    ]
    assert infer_once(s3_server.http_url, "chain", "IN", "OUT") == ("1", 5.0)

    second = publish(
        [read_model_source(scaler_folder(tmp_path / "v2", "triple", 10.0))],
        store,
        endpoints,
        admin=admin,
        report=lambda line: None,
    )
    assert second.published == [("triple", 2)]
    assert infer_once(s3_server.http_url, "chain", "IN", "OUT") == ("1", 12.0)

    rollback("triple", store, endpoints, admin=admin, report=lambda line: None)
    assert infer_once(s3_server.http_url, "triple") == ("1", 3.0)
    assert infer_once(s3_server.http_url, "chain", "IN", "OUT") == ("1", 5.0)
    assert store.version_folders("triple") == [1, 2]
