"""The S3 model store: `s3://bucket/prefix`, or Triton's `s3://http://host:port/bucket/prefix`.

Credentials come from boto3's standard chain (environment, shared files, instance or pod
roles), never from the command line. Large files go up in parts. Every request that carries file
bytes (the one PUT, or each part) also carries their SHA256, which S3 checks before it accepts
them; afterwards the SHA256 checksum S3 stored for each object is compared with one computed
here from the local file. S3 keeps these checksums whatever the encryption, whereas an ETag is
not an MD5 of the bytes under SSE-KMS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_tools.publishing.names import check_model_name, check_version, parse_version_folder
from inference_tools.publishing.stores import (
    CONFIG_FILE,
    MANIFEST_FILE,
    FileRecord,
    ModelStore,
    StoreError,
    VersionExistsError,
    manifest_bytes,
    progress_bar,
)

# Triton's own spelling for an S3-compatible endpoint: s3://http://host:port/bucket/prefix
TRITON_S3_URL = re.compile(r"s3://(?P<endpoint>https?://[^/]+)/(?P<bucket>[^/]+)/?(?P<prefix>.*)")
PLAIN_S3_URL = re.compile(r"s3://(?P<bucket>[^/]+)/?(?P<prefix>.*)")
HASH_BLOCK_BYTES = 1 << 20
MULTIPART_THRESHOLD_BYTES = 16 * 1024 * 1024
MULTIPART_CHUNK_BYTES = 16 * 1024 * 1024
# SHA256: the manifest's algorithm too. S3 keeps a multipart object's SHA256 as a composite
# (the only type S3 offers for SHA256 on multipart uploads); CRC types could be full-object.
CHECKSUM_ALGORITHM = "SHA256"


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # without leading or trailing '/'; '' for the bucket's root
    endpoint_url: str | None = None

    @classmethod
    def parse(cls, url: str) -> S3Location:
        match = TRITON_S3_URL.fullmatch(url) or PLAIN_S3_URL.fullmatch(url)
        if match is None:
            raise ValueError(f"{url!r} is not an s3://bucket/prefix URL")
        parts = match.groupdict()
        prefix = parts["prefix"].strip("/")
        if any(segment in ("", ".", "..") for segment in prefix.split("/")) and prefix:
            raise ValueError(f"{url!r}: the prefix has an empty, '.' or '..' segment")
        return cls(parts["bucket"], prefix, parts.get("endpoint"))

    def key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def triton_url(self) -> str:
        base = f"{self.endpoint_url}/" if self.endpoint_url else ""
        return f"s3://{base}{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")


def _base64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def local_checksums(path: Path, threshold: int, chunk_size: int) -> tuple[str, str]:
    """(the file's sha256 in hex, the ChecksumSHA256 S3 stores for it when s3transfer uploads it
    with these settings).

    One PUT: the SHA256 of the bytes. Multipart: a composite, the SHA256 of the parts' SHA256
    digests joined in part order, then "-" and the part count (Amazon S3 User Guide, "Checking
    object integrity", part-level checksums for multipart uploads).
    """
    from s3transfer.utils import ChunksizeAdjuster

    size = path.stat().st_size
    whole = hashlib.sha256()
    if size < threshold:
        with path.open("rb") as handle:
            while block := handle.read(HASH_BLOCK_BYTES):
                whole.update(block)
        return whole.hexdigest(), _base64(whole.digest())
    # The part size s3transfer itself uses (it raises the chunk size past 10,000 parts).
    part_size = ChunksizeAdjuster().adjust_chunksize(chunk_size, size)
    part_digests = []
    with path.open("rb") as handle:
        while part := handle.read(part_size):
            whole.update(part)
            part_digests.append(hashlib.sha256(part).digest())
    composite = _base64(hashlib.sha256(b"".join(part_digests)).digest())
    return whole.hexdigest(), f"{composite}-{len(part_digests)}"


def same_checksum(stored: str, expected: str) -> bool:
    """Whether a checksum S3 reports is the one expected.

    HeadObject gives a composite its part count ("...=-3"; base64 has no "-"); GetObjectAttributes
    and some S3-compatible servers leave the count out. The digest covers every part either way.
    """
    digest, _, parts = stored.partition("-")
    expected_digest, _, expected_parts = expected.partition("-")
    return digest == expected_digest and parts in ("", expected_parts)


class S3Store(ModelStore):
    def __init__(
        self,
        url: str,
        *,
        client: Any = None,
        multipart_threshold: int = MULTIPART_THRESHOLD_BYTES,
        multipart_chunk_size: int = MULTIPART_CHUNK_BYTES,
    ) -> None:
        self.location = S3Location.parse(url)
        self.triton_repository = self.location.triton_url()
        self.multipart_threshold = multipart_threshold
        self.multipart_chunk_size = multipart_chunk_size
        if client is None:
            import boto3

            # endpoint_url None leaves boto3 to its chain (AWS_ENDPOINT_URL_S3 and friends).
            client = boto3.session.Session().client("s3", endpoint_url=self.location.endpoint_url)
        self.client = client

    def _list(self, prefix: str, delimiter: str | None = None) -> tuple[list[str], list[str]]:
        """(object keys, common prefixes) under `prefix`, all pages."""
        keys: list[str] = []
        prefixes: list[str] = []
        arguments = {"Bucket": self.location.bucket, "Prefix": prefix}
        if delimiter:
            arguments["Delimiter"] = delimiter
        for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):
            keys.extend(item["Key"] for item in page.get("Contents", []))
            prefixes.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
        return keys, prefixes

    def _folder(self, *parts: str) -> str:
        return self.location.key(*parts) + "/" if self.location.key(*parts) else ""

    def model_names(self) -> list[str]:
        keys, _ = self._list(self._folder())
        suffix = "/" + CONFIG_FILE
        base = self._folder()
        return sorted(
            key[len(base) : -len(suffix)]
            for key in keys
            if key.endswith(suffix) and "/" not in key[len(base) : -len(suffix)]
        )

    def version_folders(self, name: str) -> list[int]:
        base = self._folder(check_model_name(name))
        _, prefixes = self._list(base, delimiter="/")
        versions = (parse_version_folder(p[len(base) :].rstrip("/")) for p in prefixes)
        return sorted(v for v in versions if v is not None)

    def _get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.location.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        return response["Body"].read()

    def read_config(self, name: str) -> str | None:
        data = self._get(self.location.key(check_model_name(name), CONFIG_FILE))
        return None if data is None else data.decode()

    def write_config(self, name: str, text: str) -> None:
        # One PUT: S3 never shows a reader part of an object.
        self.client.put_object(
            Bucket=self.location.bucket,
            Key=self.location.key(check_model_name(name), CONFIG_FILE),
            Body=text.encode(),
            ContentType="text/plain",
        )

    def remove_config(self, name: str) -> None:
        self.client.delete_object(
            Bucket=self.location.bucket, Key=self.location.key(check_model_name(name), CONFIG_FILE)
        )

    def read_manifest(self, name: str, version: int) -> dict[str, Any] | None:
        key = self.location.key(check_model_name(name), str(check_version(version)), MANIFEST_FILE)
        data = self._get(key)
        return None if data is None else json.loads(data)

    def upload_version(self, name: str, version: int, files: Mapping[str, Path]) -> None:
        from boto3.s3.transfer import TransferConfig

        folder = self._folder(check_model_name(name), str(check_version(version)))
        if self._list(folder)[0]:
            raise VersionExistsError(
                f"s3://{self.location.bucket}/{folder} exists: published versions are never "
                "replaced"
            )
        transfer = TransferConfig(
            multipart_threshold=self.multipart_threshold,
            multipart_chunksize=self.multipart_chunk_size,
            # The CRT client may choose other part sizes; the composite checksum depends on them.
            preferred_transfer_client="classic",
        )
        records: dict[str, FileRecord] = {}
        expected: dict[str, str] = {}
        with progress_bar(sum(p.stat().st_size for p in files.values()), name) as bar:
            for relative, source in files.items():
                sha256, expected[relative] = local_checksums(
                    source, self.multipart_threshold, self.multipart_chunk_size
                )
                self.client.upload_file(
                    str(source),
                    self.location.bucket,
                    folder + relative,
                    # boto3 computes each request's SHA256 from the bytes it sends; S3 refuses
                    # a request whose bytes do not match. The metadata keeps the whole file's
                    # sha256 with the object: a multipart object's S3 checksum is a composite.
                    ExtraArgs={
                        "ChecksumAlgorithm": CHECKSUM_ALGORITHM,
                        "Metadata": {"sha256": sha256},
                    },
                    Config=transfer,
                    Callback=bar.update,
                )
                records[relative] = FileRecord(source.stat().st_size, sha256)
        for relative in files:
            self._verify(folder + relative, records[relative], expected[relative])
        # Last: its presence says every file above is complete and verified.
        self.client.put_object(
            Bucket=self.location.bucket,
            Key=folder + MANIFEST_FILE,
            Body=manifest_bytes(name, version, records),
            ContentType="application/json",
        )

    def _verify(self, key: str, record: FileRecord, expected_checksum: str) -> None:
        """The object S3 holds is the local file: its size, and the checksum S3 stored."""
        head = self.client.head_object(Bucket=self.location.bucket, Key=key, ChecksumMode="ENABLED")
        problems = []
        if head["ContentLength"] != record.size:
            problems.append(f"size {head['ContentLength']} != {record.size} of the local file")
        stored = head.get(f"Checksum{CHECKSUM_ALGORITHM}")
        if stored is None:
            problems.append(
                f"S3 returned no {CHECKSUM_ALGORITHM} checksum for it: the server keeps no "
                "additional checksums, or something else wrote the object"
            )
        elif not same_checksum(stored, expected_checksum):
            problems.append(
                f"{CHECKSUM_ALGORITHM} checksum {stored} != {expected_checksum} computed from "
                "the local file"
            )
        if problems:
            raise StoreError(
                f"s3://{self.location.bucket}/{key} failed verification: {'; '.join(problems)}. "
                "Publish again; if it fails again, check that nothing else writes under "
                f"s3://{self.location.bucket}/{self._folder()} and that the S3 server supports "
                f"{CHECKSUM_ALGORITHM} checksums (ChecksumAlgorithm)"
            )

    def delete_version(self, name: str, version: int) -> None:
        keys, _ = self._list(self._folder(check_model_name(name), str(check_version(version))))
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            self.client.delete_objects(
                Bucket=self.location.bucket,
                Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]},
            )

    def download_model(self, name: str, version: int, target: Path) -> None:
        base = self._folder(check_model_name(name))
        keys = [self.location.key(name, CONFIG_FILE)]
        keys += self._list(self._folder(name, str(check_version(version))))[0]
        for key in keys:
            destination = target / name / key[len(base) :]
            if ".." in Path(key).parts:
                raise StoreError(f"refusing to download {key!r}: it leaves the model folder")
            destination.parent.mkdir(parents=True, exist_ok=True)
            self.client.download_file(self.location.bucket, key, str(destination))
