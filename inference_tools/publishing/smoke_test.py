"""Load the new versions on a throwaway local CPU Triton before the store is touched.

The temporary repository holds the models being published (with the configs they will be
published with) and, for ensembles, the composing models copied from the store at the versions
the store serves. A model that fails to load or to answer never reaches the store.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_tools.local_server import LocalTritonServer, ServerStartError, log_tail
from inference_tools.model_config import parse_model_config
from inference_tools.publishing.endpoints import HttpEndpoint
from inference_tools.publishing.rollout import AdminAccess, RolloutError, switch_endpoint
from inference_tools.publishing.sources import CONFIG_FILE, ModelSource
from inference_tools.publishing.stores import ModelStore
from inference_tools.publishing.versions import served_versions


class SmokeTestError(RuntimeError):
    pass


@dataclass(frozen=True)
class Candidate:
    """A model about to be published: its source, new version, and the config to publish."""

    source: ModelSource
    version: int
    config_text: str
    request: dict[str, Any]


def _write_candidate(repository: Path, candidate: Candidate) -> None:
    model_dir = repository / candidate.source.name
    version_dir = model_dir / str(candidate.version)
    version_dir.mkdir(parents=True)
    (model_dir / CONFIG_FILE).write_text(candidate.config_text)
    for relative, path in candidate.source.files.items():
        (version_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, version_dir / relative)


def _copy_dependencies(
    repository: Path, candidates: Sequence[Candidate], store: ModelStore
) -> None:
    """Composing models of ensembles that are not being published, recursively, from the store."""
    present = {c.source.name for c in candidates}
    pending = [c.source.config for c in candidates if c.source.is_ensemble]
    while pending:
        config = pending.pop()
        for step in config.ensemble_scheduling.step:
            name = step.model_name
            if name in present:
                continue
            text = store.read_config(name)
            if text is None:
                raise SmokeTestError(f"ensemble step model '{name}' is not in the store")
            dependency = parse_model_config(text, f"{store.describe()}/{name}/{CONFIG_FILE}")
            version = max(served_versions(dependency), default=0) or max(
                store.version_folders(name), default=0
            )
            if not version:
                raise SmokeTestError(f"model '{name}' has no version in the store")
            store.download_model(name, version, repository)
            present.add(name)
            if dependency.platform == "ensemble":
                pending.append(dependency)


def run_smoke_test(
    candidates: Sequence[Candidate], store: ModelStore, timeout_s: float = 300.0
) -> float:
    """Load and query every candidate on a fresh local server; returns the seconds it took."""
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="publish-smoke-") as temporary:
        repository = Path(temporary) / "repository"
        repository.mkdir()
        for candidate in candidates:
            _write_candidate(repository, candidate)
        _copy_dependencies(repository, candidates, store)
        server = LocalTritonServer(repository, extra_args=["--model-control-mode=explicit"])
        try:
            server.start(timeout_s=timeout_s)
        except ServerStartError as error:
            raise SmokeTestError(f"the local smoke-test server did not start: {error}") from None
        try:
            endpoint = HttpEndpoint(server.http_url)
            for candidate in candidates:
                try:
                    switch_endpoint(
                        endpoint,
                        candidate.source.name,
                        candidate.version,
                        candidate.request,
                        AdminAccess(),
                        timeout_s,
                    )
                except (RolloutError, OSError) as error:
                    raise SmokeTestError(
                        f"smoke test of '{candidate.source.name}' on a local CPU Triton failed: "
                        f"{error}\nLast lines of the server log ({server.log_path}):\n"
                        f"{log_tail(server.log_path, 15)}"
                    ) from None
        finally:
            server.stop()
    return time.monotonic() - started
