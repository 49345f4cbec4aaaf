"""Drain a Triton server exactly: unload its models and wait until Triton has released them.

In explicit model-control mode, `POST /v2/repository/models/<m>/unload` returns at once and the
model stays `UNLOADING` in the repository index until the last request holding it has been
answered (Triton releases a model object only when its last request does), then turns
`UNAVAILABLE`. That is Triton's own in-flight accounting, for every protocol, for a batch that
executes without CPU and for requests queued behind it. An ensemble's requests hold the
ensemble, so the models it calls are unloaded only after it is gone: stage by stage, each stage
the loaded models that no still-loaded ensemble calls (entry models first; nested ensembles
follow from the repetition).

Where the server refuses unloads (`--model-control-mode=none` or `poll` answer 400), the caller
falls back to watching for quiet (drain.py). Standard library only, like the rest of the unit.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# Run as a file, drain.py has put the unit's parent folder on sys.path already.
from pod_hooks.model_roles import (
    ADMIN_HEADER,
    ENSEMBLE_PLATFORM,
    ModelRolesError,
    roles_from_server,
)

REQUEST_TIMEOUT_S = 3.0
DEFAULT_POLL_INTERVAL_S = 0.2
# States in which a model may still hold requests (or be about to, while it loads).
HOLDING_STATES = frozenset({"READY", "UNLOADING", "LOADING"})
EXACT_FLAGS = "--model-control-mode=explicit --load-model=*"


class UnloadRefused(RuntimeError):
    """The server will not unload models (wrong mode, no admin key): drain another way."""


class ServerGone(RuntimeError):
    """Nothing listens at the HTTP endpoint."""


@dataclass(frozen=True)
class UnloadOutcome:
    drained: bool  # False: the deadline passed with models still holding requests
    reason: str
    stages: tuple[tuple[str, ...], ...]  # the unload order actually taken
    holding: tuple[str, ...] = ()  # models still loaded or unloading at the deadline


def calls(config: Mapping[str, Any]) -> set[str]:
    """The models an ensemble config's steps call (none for a plain model)."""
    if config.get("platform") != ENSEMBLE_PLATFORM:
        return set()
    steps = config.get("ensemble_scheduling", {}).get("step", [])
    return {str(step["model_name"]) for step in steps}


def unload_stages(configs: Mapping[str, Mapping[str, Any]]) -> Iterator[tuple[str, ...]]:
    """The loaded models in unload order: each stage holds the models that no ensemble still
    loaded after the previous stages calls."""
    remaining = set(configs)
    while remaining:
        called = {model for name in remaining for model in calls(configs[name])}
        stage = tuple(sorted(remaining - called))
        if not stage:  # a cycle, which Triton refuses to load: unload the rest together
            stage = tuple(sorted(remaining))
        yield stage
        remaining -= set(stage)


def _refused(error: BaseException) -> bool:
    return isinstance(error, ConnectionRefusedError) or isinstance(
        getattr(error, "reason", None), ConnectionRefusedError
    )


class RepositoryClient:
    """The repository API calls the drain needs, with the admin header where a key is set."""

    def __init__(self, http_url: str, admin_key: str | None = None) -> None:
        self.http_url = http_url.rstrip("/")
        self.admin_key = admin_key or None

    def _post(self, path: str) -> Any:
        headers = {"Content-Type": "application/json"}
        if self.admin_key:
            headers[ADMIN_HEADER] = self.admin_key
        request = urllib.request.Request(
            f"{self.http_url}{path}", data=b"{}", headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as response:
                body = response.read()
        except OSError as error:  # HTTPError included: the callers say what it means
            if _refused(error):
                raise ServerGone(f"nothing listens at {self.http_url}") from None
            raise
        return json.loads(body) if body.strip() else None

    def states(self) -> dict[str, set[str]]:
        """Each model of the repository index with the states of its versions."""
        found: dict[str, set[str]] = {}
        for entry in self._post("/v2/repository/index"):
            found.setdefault(str(entry["name"]), set()).add(str(entry.get("state", "")))
        return found

    def unload(self, model: str) -> None:
        quoted = urllib.parse.quote(model, safe="")
        try:
            self._post(f"/v2/repository/models/{quoted}/unload")
        except urllib.error.HTTPError as error:
            detail = error.read().decode("utf-8", errors="replace")[:200]
            raise UnloadRefused(f"unloading {model!r} answered {error.code}: {detail}") from None


def unload_drain(
    http_url: str,
    *,
    admin_key: str | None,
    deadline_s: float,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = lambda message: None,
) -> UnloadOutcome:
    """Unload every READY model stage by stage, each stage once Triton has released the last.

    Raises UnloadRefused (the server cannot drain this way: fall back) or ServerGone.
    """
    start = clock()
    client = RepositoryClient(http_url, admin_key)
    try:
        client.states()  # ServerGone before anything else where nothing listens
    except urllib.error.HTTPError as error:
        raise UnloadRefused(f"the repository index answered {error.code}") from None
    try:
        roles = roles_from_server(http_url, admin_key, REQUEST_TIMEOUT_S)
    except ModelRolesError as error:
        raise UnloadRefused(f"the model configs cannot be read: {error}") from None
    taken: list[tuple[str, ...]] = []
    for stage in unload_stages(roles.configs):
        taken.append(stage)
        log(f"unloading {', '.join(stage)}; Triton answers their requests before it lets go")
        to_unload = list(stage)
        while True:
            for model in list(to_unload):
                try:
                    client.unload(model)  # UnloadRefused, ServerGone: the caller decides
                    to_unload.remove(model)
                except OSError as error:  # no answer in time: asked again on the next poll
                    log(f"unload of {model} not answered ({error}); asking again")
            try:
                states = client.states()
            except (OSError, ValueError) as error:  # ServerGone is no OSError: it ends the drain
                states = None
                log(f"repository index unreadable ({error}); retrying until the deadline")
            holding = (
                tuple(m for m in stage if states.get(m, set()) & HOLDING_STATES)
                if states is not None
                else stage
            )
            if not holding:
                break
            elapsed = clock() - start
            if elapsed >= deadline_s:
                detail = ", ".join(
                    f"{m} ({'/'.join(sorted(states.get(m, set())))})" if states else m
                    for m in holding
                )
                log(
                    f"deadline of {deadline_s:g}s passed; still holding requests: {detail}; "
                    "their requests fail on SIGTERM"
                )
                return UnloadOutcome(False, "deadline passed", tuple(taken), holding)
            sleep(min(poll_interval_s, max(0.0, deadline_s - elapsed)))
    log(f"every model released after {clock() - start:.1f}s: no request in flight")
    return UnloadOutcome(True, "unloaded", tuple(taken))
