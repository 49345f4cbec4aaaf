"""The exact drain's unload order and its refusals, against a small fake repository API.

The real-server cases (a batch executing without CPU, queued requests, an ensemble's steps,
arrivals during the drain, a server in mode none) are in tests/lab/reliability/test_drain_cases.py.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator

import pytest
from pod_hooks import drain, unload_drain

from tests.fakes.http_server import serving

ENSEMBLE = {"platform": "ensemble"}


def ensemble_of(*models: str) -> dict:
    return {**ENSEMBLE, "ensemble_scheduling": {"step": [{"model_name": m} for m in models]}}


CONFIGS = {
    "outer": ensemble_of("inner", "pooler"),
    "inner": ensemble_of("tokenizer", "encoder"),
    "tokenizer": {"backend": "python"},
    "encoder": {"backend": "onnxruntime"},
    "pooler": {"backend": "python"},
    "digits": {"backend": "onnxruntime"},
}


def test_stages_unload_entry_models_first_and_nested_ensembles_in_turn() -> None:
    assert list(unload_drain.unload_stages(CONFIGS)) == [
        ("digits", "outer"),
        ("inner", "pooler"),
        ("encoder", "tokenizer"),
    ]


class FakeRepository:
    """Models READY until unloaded, then UNLOADING for `holding_polls` index reads."""

    def __init__(
        self, configs: dict, holding_polls: int, refuse: int | None = None, hang_first: int = 0
    ) -> None:
        self.configs = configs
        self.hang_first = hang_first  # unload calls left unanswered (longer than the timeout)
        self.state = dict.fromkeys(configs, "READY")
        self.polls_left: dict[str, int] = {}
        self.holding_polls = holding_polls
        self.refuse = refuse
        self.unloads: list[str] = []
        self.lock = threading.Lock()

    def index(self) -> list[dict]:
        with self.lock:
            for name, left in list(self.polls_left.items()):
                if left <= 0:
                    self.state[name] = "UNAVAILABLE"
                    del self.polls_left[name]
                else:
                    self.polls_left[name] = left - 1
            return [{"name": n, "version": "1", "state": s} for n, s in self.state.items()]

    def unload(self, name: str) -> int:
        if self.hang_first:
            self.hang_first -= 1
            time.sleep(1.0)
            return 500
        if self.refuse:
            return self.refuse
        with self.lock:
            # An ensemble's steps must still be loaded while it holds requests.
            for caller, config in self.configs.items():
                if self.state[caller] != "UNAVAILABLE" and name in unload_drain.calls(config):
                    raise AssertionError(f"{name} unloaded while {caller} still calls it")
            self.unloads.append(name)
            self.state[name] = "UNLOADING"
            self.polls_left[name] = self.holding_polls
        return 200


@pytest.fixture
def fake_server(request) -> Iterator[tuple[str, FakeRepository]]:
    repository = FakeRepository(CONFIGS, **getattr(request, "param", {"holding_polls": 2}))

    class Handler(http.server.BaseHTTPRequestHandler):
        def reply(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path == "/v2/repository/index":
                self.reply(200, repository.index())
            elif self.path.endswith("/unload"):
                status = repository.unload(self.path.split("/")[-2])
                self.reply(status, {} if status == 200 else {"error": "not allowed"})
            else:
                self.reply(404, {"error": "unknown"})

        def do_GET(self) -> None:
            name = self.path.split("/")[-2]
            self.reply(200, {"name": name, **CONFIGS[name]})

        def log_message(self, *args: object) -> None:
            pass

    with serving(Handler) as url:
        yield url, repository


def test_each_stage_waits_until_triton_released_the_last(fake_server) -> None:
    url, repository = fake_server
    messages: list[str] = []
    result = drain.drain_server(
        "unused",
        propagation_s=0,
        deadline_s=30,
        poll_interval_s=0.01,
        http_url=url,
        log=messages.append,
    )
    assert result.idle and result.mechanism == "unload", messages
    assert repository.unloads == ["digits", "outer", "inner", "pooler", "encoder", "tokenizer"]
    assert set(repository.state.values()) == {"UNAVAILABLE"}


@pytest.mark.parametrize("fake_server", [{"holding_polls": 10**9}], indirect=True)
def test_a_model_that_never_lets_go_is_named_at_the_deadline(fake_server) -> None:
    url, _ = fake_server
    messages: list[str] = []
    result = drain.drain_server(
        "unused",
        propagation_s=0,
        deadline_s=0.5,
        poll_interval_s=0.05,
        http_url=url,
        log=messages.append,
    )
    assert not result.idle and result.mechanism == "unload"
    assert "still holding requests: digits (UNLOADING), outer (UNLOADING)" in messages[-1]


@pytest.mark.parametrize("fake_server", [{"holding_polls": 0, "refuse": 400}], indirect=True)
def test_refused_unloads_fall_back_to_watching_for_quiet(fake_server) -> None:
    url, _ = fake_server
    messages: list[str] = []
    idle = drain.Activity(0, 5, 0.0)
    result = drain.drain_server(
        "unused",
        propagation_s=0,
        deadline_s=10,
        quiet_s=0.1,
        poll_interval_s=0.02,
        scrape=lambda _url: idle,
        http_url=url,
        log=messages.append,
    )
    assert result.idle and result.mechanism == "quiet"
    assert any("exact drain impossible" in m and "answered 400" in m for m in messages), messages


@pytest.mark.parametrize("fake_server", [{"holding_polls": 1, "hang_first": 1}], indirect=True)
def test_an_unload_that_gets_no_answer_is_asked_again(fake_server, monkeypatch) -> None:
    monkeypatch.setattr(unload_drain, "REQUEST_TIMEOUT_S", 0.3)
    url, repository = fake_server
    messages: list[str] = []
    result = drain.drain_server(
        "unused",
        propagation_s=0,
        deadline_s=30,
        poll_interval_s=0.01,
        http_url=url,
        log=messages.append,
    )
    assert result.idle and result.mechanism == "unload", messages
    assert any("not answered" in m and "asking again" in m for m in messages), messages
    assert set(repository.state.values()) == {"UNAVAILABLE"}
