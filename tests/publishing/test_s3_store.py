"""The S3 store against a local S3-protocol server (moto_server), and a Triton reading from it."""

from __future__ import annotations

import base64
import hashlib
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
KMS_BUCKET = "models-kms"
MIB = 1024 * 1024
# S3's smallest part: an 11 MiB file goes up as parts of 5, 5 and 1 MiB.
PART_BYTES = 5 * MIB


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


def part_store(endpoint: str, bucket: str, prefix: str, client=None) -> S3Store:
    return S3Store(
        f"s3://{endpoint}/{bucket}/{prefix}",
        client=client,
        multipart_threshold=PART_BYTES,
        multipart_chunk_size=PART_BYTES,
    )


def model_files(folder: Path) -> dict[str, Path]:
    """One file under the multipart threshold (one PUT), one over it (three parts)."""
    files = {"vocab.txt": folder / "vocab.txt", "weights.bin": folder / "weights.bin"}
    files["vocab.txt"].write_bytes(os.urandom(1000))
    files["weights.bin"].write_bytes(os.urandom(11 * MIB))
    return files


def test_one_put_and_multipart_uploads_carry_sha256_checksums_that_verify(tmp_path, s3_endpoint):
    store = part_store(s3_endpoint, BUCKET, "checksums")
    files = model_files(tmp_path)
    store.upload_version("big", 1, files)
    client = store.client
    small = client.head_object(
        Bucket=BUCKET, Key="checksums/big/1/vocab.txt", ChecksumMode="ENABLED"
    )
    # One PUT: S3's checksum is the SHA256 of the file.
    file_sha256 = hashlib.sha256(files["vocab.txt"].read_bytes()).digest()
    assert small["ChecksumSHA256"] == base64.b64encode(file_sha256).decode()
    large = client.get_object(
        Bucket=BUCKET, Key="checksums/big/1/weights.bin", ChecksumMode="ENABLED"
    )
    large["Body"].close()
    # Three parts, each checked on arrival: S3's checksum is a composite of the three.
    assert large["ChecksumType"] == "COMPOSITE"
    assert large["ChecksumSHA256"].endswith("-3")
    assert store.version_folders("big") == [1]
    assert store.read_manifest("big", 1)["files"]["weights.bin"]["size"] == 11 * MIB
    with pytest.raises(VersionExistsError):
        store.upload_version("big", 1, files)


class ReplacingClient:
    """An S3 client after whose upload of `replaced` another writer puts different bytes of the
    same size under the same key, with the same settings: only the content differs."""

    def __init__(self, client, replaced: str) -> None:
        self._client = client
        self._replaced = replaced

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_file(self, filename, bucket, key, **kwargs):
        self._client.upload_file(filename, bucket, key, **kwargs)
        if key.endswith("/" + self._replaced):
            data = bytearray(Path(filename).read_bytes())
            data[len(data) // 2] ^= 0xFF
            other = Path(filename).with_name("other-writer.bin")
            other.write_bytes(data)
            kwargs.pop("Callback", None)
            self._client.upload_file(str(other), bucket, key, **kwargs)


@pytest.mark.parametrize("replaced", ["vocab.txt", "weights.bin"], ids=["one-put", "multipart"])
def test_an_object_replaced_after_upload_fails_verification(tmp_path, s3_endpoint, replaced):
    real = part_store(s3_endpoint, BUCKET, f"replaced-{replaced}")
    store = part_store(
        s3_endpoint, BUCKET, f"replaced-{replaced}", ReplacingClient(real.client, replaced)
    )
    with pytest.raises(StoreError, match=f"{replaced} failed verification: SHA256 checksum"):
        store.upload_version("big", 1, model_files(tmp_path))
    assert real.read_manifest("big", 1) is None


class CorruptingClient:
    """An S3 client whose uploads lose a byte on the way: what verification must catch."""

    def __init__(self, client, **put_arguments) -> None:
        self._client = client
        self._put_arguments = put_arguments

    def __getattr__(self, name):
        return getattr(self._client, name)

    def upload_file(self, filename, bucket, key, **kwargs):
        data = Path(filename).read_bytes()[:-1]
        self._client.put_object(Bucket=bucket, Key=key, Body=data, **self._put_arguments)


def test_a_corrupted_upload_fails_verification_and_writes_no_manifest(tmp_path, s3_endpoint):
    real = S3Store(f"s3://{s3_endpoint}/{BUCKET}/corrupt")
    corrupting = CorruptingClient(real.client, ChecksumAlgorithm="SHA256")
    store = S3Store(f"s3://{s3_endpoint}/{BUCKET}/corrupt", client=corrupting)
    model = scaler_folder(tmp_path, "scaler", 1.0) / "1" / "model.onnx"
    with pytest.raises(StoreError, match=r"size .* of the local file; SHA256 checksum") as error:
        store.upload_version("scaler", 1, {"model.onnx": model})
    assert "Publish again" in str(error.value)
    assert real.read_manifest("scaler", 1) is None


def test_an_object_without_a_sha256_checksum_fails_verification(tmp_path, s3_endpoint):
    real = S3Store(f"s3://{s3_endpoint}/{BUCKET}/unchecked")
    # Written as by another tool or a server that keeps no SHA256: boto3's default is CRC32.
    store = S3Store(f"s3://{s3_endpoint}/{BUCKET}/unchecked", client=CorruptingClient(real.client))
    model = scaler_folder(tmp_path, "scaler", 1.0) / "1" / "model.onnx"
    with pytest.raises(StoreError, match="returned no SHA256 checksum"):
        store.upload_version("scaler", 1, {"model.onnx": model})
    assert real.read_manifest("scaler", 1) is None


@pytest.fixture(scope="module")
def kms_key(s3_endpoint) -> str:
    """A bucket whose objects are encrypted with a KMS key by default (SSE-KMS); the key's ARN."""
    key = boto3.client("kms", endpoint_url=s3_endpoint).create_key(Description="publish tests")
    arn = key["KeyMetadata"]["Arn"]
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=KMS_BUCKET)
    s3.put_bucket_encryption(
        Bucket=KMS_BUCKET,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": arn,
                    }
                }
            ]
        },
    )
    return arn


def etags_as_s3_gives_sse_kms_objects(client) -> None:
    """S3 gives an SSE-KMS object an ETag that is not an MD5 of its bytes; moto still gives the
    MD5. Rewrite what HeadObject and GetObject return as S3 would: verification must not care."""

    def not_an_md5(parsed, **_):
        if "ETag" in parsed:
            parsed["ETag"] = f'"{os.urandom(16).hex()}"'

    for operation in ("HeadObject", "GetObject"):
        client.meta.events.register(f"after-call.s3.{operation}", not_an_md5)


def test_an_sse_kms_bucket_publishes_and_verifies(tmp_path, s3_endpoint, kms_key):
    store = part_store(s3_endpoint, KMS_BUCKET, "encrypted")
    etags_as_s3_gives_sse_kms_objects(store.client)
    files = model_files(tmp_path)
    store.upload_version("big", 1, files)
    for name in files:
        head = store.client.head_object(Bucket=KMS_BUCKET, Key=f"encrypted/big/1/{name}")
        assert (head["ServerSideEncryption"], head["SSEKMSKeyId"]) == ("aws:kms", kms_key)
    assert sorted(store.read_manifest("big", 1)["files"]) == sorted(files)


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
