"""Model stores: a local folder or an S3 prefix, both laid out as a Triton model repository.

A version is uploaded completely, its checksums verified, and its manifest written last; only
then may the model's config name it as served (see `versions.py`). Writing the config is one
atomic step in both stores: a rename of a complete file, or one S3 PUT.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from inference_tools.atomic_files import write_bytes_atomically
from inference_tools.model_artifacts import sha256_file
from inference_tools.publishing.names import check_model_name, check_version, parse_version_folder

CONFIG_FILE = "config.pbtxt"
# Written last into each published version folder: a folder without it is an incomplete upload.
# It also keeps an ensemble's otherwise empty version folder in existence on S3.
MANIFEST_FILE = ".publish-manifest.json"


class StoreError(RuntimeError):
    pass


class VersionExistsError(StoreError):
    pass


@dataclass(frozen=True)
class FileRecord:
    size: int
    sha256: str


def manifest_bytes(name: str, version: int, records: Mapping[str, FileRecord]) -> bytes:
    manifest = {
        "model": name,
        "version": version,
        "published_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "files": {path: {"size": r.size, "sha256": r.sha256} for path, r in records.items()},
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def progress_bar(total_bytes: int, description: str) -> tqdm:
    # disable=None: a bar on a terminal, silence in logs and CI.
    return tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=description,
        disable=None,
        leave=False,
    )


class ModelStore(ABC):
    """A Triton model repository the publisher may write to."""

    #: What Triton's --model-repository takes to read this store.
    triton_repository: str

    @abstractmethod
    def model_names(self) -> list[str]: ...

    @abstractmethod
    def version_folders(self, name: str) -> list[int]:
        """Every version folder of the model, served or not, complete or not."""

    @abstractmethod
    def read_config(self, name: str) -> str | None: ...

    @abstractmethod
    def write_config(self, name: str, text: str) -> None:
        """Replace the model's config.pbtxt in one step: readers see the old or the new one."""

    @abstractmethod
    def remove_config(self, name: str) -> None:
        """Forget a model whose first publication failed (its versions are deleted apart)."""

    @abstractmethod
    def read_manifest(self, name: str, version: int) -> dict[str, Any] | None: ...

    @abstractmethod
    def upload_version(self, name: str, version: int, files: Mapping[str, Path]) -> None:
        """Upload, verify, then write the manifest; refuse a version that already exists."""

    @abstractmethod
    def delete_version(self, name: str, version: int) -> None: ...

    @abstractmethod
    def download_model(self, name: str, version: int, target: Path) -> None:
        """Copy config.pbtxt and one version folder to `target/<name>/`."""

    def describe(self) -> str:
        return self.triton_repository


class LocalFolderStore(ModelStore):
    """A folder that a local Triton (or a volume in a pod) reads as its model repository."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.triton_repository = str(self.root)

    def _model_dir(self, name: str) -> Path:
        return self.root / check_model_name(name)

    def model_names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / CONFIG_FILE).is_file())

    def version_folders(self, name: str) -> list[int]:
        model_dir = self._model_dir(name)
        if not model_dir.is_dir():
            return []
        versions = (parse_version_folder(p.name) for p in model_dir.iterdir() if p.is_dir())
        return sorted(v for v in versions if v is not None)

    def read_config(self, name: str) -> str | None:
        path = self._model_dir(name) / CONFIG_FILE
        return path.read_text() if path.is_file() else None

    def write_config(self, name: str, text: str) -> None:
        write_bytes_atomically(self._model_dir(name) / CONFIG_FILE, text.encode())

    def remove_config(self, name: str) -> None:
        model_dir = self._model_dir(name)
        (model_dir / CONFIG_FILE).unlink(missing_ok=True)
        if model_dir.is_dir() and not any(model_dir.iterdir()):
            model_dir.rmdir()

    def read_manifest(self, name: str, version: int) -> dict[str, Any] | None:
        path = self._model_dir(name) / str(check_version(version)) / MANIFEST_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def upload_version(self, name: str, version: int, files: Mapping[str, Path]) -> None:
        model_dir = self._model_dir(name)
        target = model_dir / str(check_version(version))
        if target.exists():
            raise VersionExistsError(f"{target} exists: published versions are never replaced")
        # Triton reads only numbered folders, so the staging folder is invisible to it; the
        # rename below makes the complete version appear at once.
        staging = model_dir / f".incoming-{version}-{uuid.uuid4().hex[:8]}"
        staging.mkdir(parents=True)
        try:
            records = {}
            with progress_bar(sum(p.stat().st_size for p in files.values()), name) as bar:
                for relative, source in files.items():
                    destination = staging / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(source, destination)
                    expected, copied = sha256_file(source), sha256_file(destination)
                    if expected != copied:
                        raise StoreError(f"{destination}: checksum {copied} != {expected}")
                    records[relative] = FileRecord(destination.stat().st_size, copied)
                    bar.update(records[relative].size)
            (staging / MANIFEST_FILE).write_bytes(manifest_bytes(name, version, records))
            if target.exists():
                raise VersionExistsError(f"{target} appeared while uploading; nothing replaced")
            os.rename(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def delete_version(self, name: str, version: int) -> None:
        shutil.rmtree(self._model_dir(name) / str(check_version(version)), ignore_errors=True)

    def download_model(self, name: str, version: int, target: Path) -> None:
        model_dir = self._model_dir(name)
        destination = target / name
        destination.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(model_dir / CONFIG_FILE, destination / CONFIG_FILE)
        shutil.copytree(model_dir / str(version), destination / str(version))
