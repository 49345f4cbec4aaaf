"""How the tooling waits for a process it started (Triton, Prometheus, nginx, moto_server) to
answer: ready, gone, or too slow, each said apart."""

from __future__ import annotations

import subprocess
import sys
import time
from http.server import BaseHTTPRequestHandler

from inference_tools.local_server import LOOPBACK, free_port
from inference_tools.subprocesses import answers, wait_until_ready

from tests.fakes.http_server import serving


class Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ready" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_answers_is_a_200_and_nothing_else() -> None:
    with serving(Ready) as url:
        assert answers(f"{url}/ready")
        assert not answers(f"{url}/starting")  # an error status
    assert not answers(f"http://{LOOPBACK}:{free_port()}/ready")  # nobody listening


def test_ready_after_a_few_polls() -> None:
    polls = iter([False, False, True])
    assert wait_until_ready(lambda: next(polls), None, timeout_s=5, interval_s=0.01) is None


def test_a_process_that_exits_is_not_waited_for() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    process.wait()
    started = time.monotonic()
    assert wait_until_ready(lambda: False, process, timeout_s=30) == "exited with status 3"
    assert time.monotonic() - started < 1


def test_the_deadline_says_how_long_it_waited() -> None:
    assert wait_until_ready(lambda: False, None, timeout_s=0.2, interval_s=0.05) == (
        "not ready after 0.2s"
    )
