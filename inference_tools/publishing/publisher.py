"""Publish new model versions and roll them out, or roll a model back; undo on any failure.

Order of a publish:
  1. validate every model (names, config schema, ONNX graph, Python code, ensemble wiring);
  2. smoke-test the new versions on a throwaway local CPU Triton;
  3. upload each version folder where no server loads it (the served config does not name it);
  4. per model: write the config naming the new version (one atomic write), reload every
     server, wait until the version is READY and answers;
  5. on any failure in 3-4: write back the previous configs, reload, delete the new folders.
Nothing is written before step 3, so a model that fails 1-2 leaves the store as it was.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference_tools.model_config import parse_model_config
from inference_tools.publishing.endpoints import TritonEndpoint
from inference_tools.publishing.inference_check import read_sample_request, sample_request
from inference_tools.publishing.names import check_version
from inference_tools.publishing.rollout import (
    AdminAccess,
    RolloutError,
    load_model,
    serving_table,
    switch_endpoint,
    unload_model,
)
from inference_tools.publishing.smoke_test import Candidate, run_smoke_test
from inference_tools.publishing.sources import CONFIG_FILE, ModelSource
from inference_tools.publishing.stores import ModelStore, VersionExistsError
from inference_tools.publishing.validation import ModelValidationError, validate_source
from inference_tools.publishing.versions import next_version, served_versions, with_served_versions

Reporter = Callable[[str], None]


class PublishError(RuntimeError):
    pass


@dataclass
class PublishResult:
    published: list[tuple[str, int]]
    timings_s: dict[str, float] = field(default_factory=dict)
    serving: list[tuple[str, str, str]] = field(default_factory=list)


def order_for_publishing(sources: Sequence[ModelSource]) -> list[ModelSource]:
    """Composing models before the ensembles that use them (both in the same call)."""
    by_name = {s.name: s for s in sources}
    if len(by_name) != len(sources):
        raise ModelValidationError("the same model name is given twice")
    ordered: list[ModelSource] = []
    done: set[str] = set()
    visiting: set[str] = set()

    def visit(source: ModelSource) -> None:
        if source.name in done:
            return
        if source.name in visiting:
            raise ModelValidationError(f"ensemble '{source.name}' depends on itself")
        visiting.add(source.name)
        for step in source.config.ensemble_scheduling.step:
            if step.model_name in by_name:
                visit(by_name[step.model_name])
        ordered.append(source)
        done.add(source.name)

    for source in sources:
        visit(source)
    return ordered


def _store_configs(store: ModelStore) -> dict[str, Any]:
    configs = {}
    for name in store.model_names():
        text = store.read_config(name)
        if text is not None:
            configs[name] = parse_model_config(text, f"{store.describe()}/{name}/{CONFIG_FILE}")
    return configs


def plan_candidates(
    sources: Sequence[ModelSource],
    store: ModelStore,
    version: int | None = None,
    sample_request_path: Path | None = None,
) -> list[Candidate]:
    """Validate the sources and choose their new versions; writes nothing."""
    ordered = order_for_publishing(sources)
    if version is not None and len(ordered) > 1:
        raise ValueError("a version number can be given only when publishing one model")
    available = _store_configs(store) | {s.name: s.config for s in ordered}
    candidates = []
    for source in ordered:
        validate_source(source, available)
        existing = store.version_folders(source.name)
        chosen = next_version(existing) if version is None else check_version(version)
        if chosen in existing:
            raise VersionExistsError(
                f"model '{source.name}' version {chosen} is already in {store.describe()}: "
                "published versions are never replaced; leave the version out to take the next"
            )
        config_text = with_served_versions(source.config_text, [chosen], source.origin)
        config = parse_model_config(config_text, source.origin)
        # A sample request is for the model the user calls: the last one (e.g. the ensemble).
        if sample_request_path is not None and source is ordered[-1]:
            request = read_sample_request(sample_request_path, config)
        else:
            request = sample_request(config)
        candidates.append(Candidate(source, chosen, config_text, request))
    return candidates


def _reload_everywhere(
    endpoints: Mapping[str, TritonEndpoint], name: str, admin: AdminAccess, timeout_s: float
) -> list[str]:
    problems = []
    for endpoint in endpoints.values():
        try:
            load_model(endpoint, name, admin, timeout_s)
        except (RolloutError, OSError) as error:
            problems.append(str(error))
    return problems


def _undo(
    store: ModelStore,
    endpoints: Mapping[str, TritonEndpoint],
    switched: list[tuple[Candidate, str | None]],
    uploaded: list[Candidate],
    admin: AdminAccess,
    timeout_s: float,
    report: Reporter,
) -> list[str]:
    problems: list[str] = []
    for candidate, previous_text in reversed(switched):
        name = candidate.source.name
        if previous_text is not None:
            report(f"rolling back: {name} serves its previous versions again")
            store.write_config(name, previous_text)
            problems += _reload_everywhere(endpoints, name, admin, timeout_s)
        else:
            report(f"rolling back: {name} was new; unloading it")
            for endpoint in endpoints.values():
                try:
                    unload_model(endpoint, name, admin)
                except (RolloutError, OSError) as error:
                    problems.append(str(error))
    for candidate in reversed(uploaded):
        store.delete_version(candidate.source.name, candidate.version)
    for candidate, previous_text in switched:
        if previous_text is None:
            store.remove_config(candidate.source.name)
    return problems


def publish(
    sources: Sequence[ModelSource],
    store: ModelStore,
    endpoints: Mapping[str, TritonEndpoint],
    *,
    version: int | None = None,
    sample_request_path: Path | None = None,
    smoke_test: bool = True,
    admin: AdminAccess | None = None,
    timeout_s: float = 300.0,
    report: Reporter = print,
) -> PublishResult:
    admin = admin or AdminAccess()
    started = time.monotonic()
    candidates = plan_candidates(sources, store, version, sample_request_path)
    timings = {"validation_s": time.monotonic() - started}
    for candidate in candidates:
        report(
            f"validated {candidate.source.name} ({candidate.source.origin}) as version "
            f"{candidate.version}"
        )
    if smoke_test:
        timings["smoke_test_s"] = run_smoke_test(candidates, store, timeout_s)
        report(f"smoke test passed on a local CPU Triton ({timings['smoke_test_s']:.1f}s)")
    uploaded: list[Candidate] = []
    switched: list[tuple[Candidate, str | None]] = []
    try:
        upload_started = time.monotonic()
        for candidate in candidates:
            store.upload_version(candidate.source.name, candidate.version, candidate.source.files)
            uploaded.append(candidate)
            report(f"uploaded {candidate.source.name}/{candidate.version} to {store.describe()}")
        timings["upload_s"] = time.monotonic() - upload_started
        switch_started = time.monotonic()
        for candidate in candidates:
            name = candidate.source.name
            previous_text = store.read_config(name)
            store.write_config(name, candidate.config_text)
            switched.append((candidate, previous_text))
            report(f"switched {name} to version {candidate.version} in the store")
            for label, endpoint in endpoints.items():
                switch_endpoint(
                    endpoint, name, candidate.version, candidate.request, admin, timeout_s
                )
                report(f"{label}: {name} version {candidate.version} is READY and answers")
        timings["switch_to_serving_s"] = time.monotonic() - switch_started
    except Exception as error:
        problems = _undo(store, endpoints, switched, uploaded, admin, timeout_s, report)
        detail = "".join(f"\n  while rolling back: {p}" for p in problems)
        raise PublishError(
            f"publishing failed and was rolled back; the store and servers serve what they "
            f"served before: {error}{detail}"
        ) from error
    timings["publish_to_serving_s"] = time.monotonic() - started
    names = [c.source.name for c in candidates]
    return PublishResult(
        published=[(c.source.name, c.version) for c in candidates],
        timings_s=timings,
        serving=serving_table(endpoints, names, admin),
    )


@dataclass
class RollbackResult:
    name: str
    from_versions: list[int]
    to_version: int
    serving: list[tuple[str, str, str]] = field(default_factory=list)


def rollback(
    name: str,
    store: ModelStore,
    endpoints: Mapping[str, TritonEndpoint],
    *,
    to_version: int | None = None,
    admin: AdminAccess | None = None,
    timeout_s: float = 300.0,
    report: Reporter = print,
) -> RollbackResult:
    """Serve an earlier version again: the same one-write switch as a publish, in reverse."""
    admin = admin or AdminAccess()
    text = store.read_config(name)
    if text is None:
        raise PublishError(f"model '{name}' is not in {store.describe()}")
    current = served_versions(parse_model_config(text, f"{name}/{CONFIG_FILE}"))
    if not current:
        raise PublishError(
            f"model '{name}' has no `specific` version policy in the store: it was not published "
            "with `inference-tools publish`"
        )
    existing = store.version_folders(name)
    if to_version is None:
        earlier = [v for v in existing if v < min(current)]
        if not earlier:
            raise PublishError(f"model '{name}' has no version before {min(current)} to go back to")
        to_version = max(earlier)
    elif to_version not in existing:
        raise PublishError(f"model '{name}' has no version {to_version} in {store.describe()}")
    elif to_version in current:
        raise PublishError(f"model '{name}' already serves version {to_version}")
    new_text = with_served_versions(text, [to_version], f"{name}/{CONFIG_FILE}")
    request = sample_request(parse_model_config(new_text, f"{name}/{CONFIG_FILE}"))
    store.write_config(name, new_text)
    report(f"switched {name} to version {to_version} in the store")
    try:
        for label, endpoint in endpoints.items():
            switch_endpoint(endpoint, name, to_version, request, admin, timeout_s)
            report(f"{label}: {name} version {to_version} is READY and answers")
    except Exception as error:
        store.write_config(name, text)
        problems = _reload_everywhere(endpoints, name, admin, timeout_s)
        detail = "".join(f"\n  while restoring: {p}" for p in problems)
        raise PublishError(
            f"rollback of '{name}' failed; versions {current} serve again: {error}{detail}"
        ) from error
    return RollbackResult(name, current, to_version, serving_table(endpoints, [name], admin))
