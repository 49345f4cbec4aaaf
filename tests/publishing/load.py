"""Clients for the publishing tests: one inference, and a bounded load generator."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np
import tritonclient.http as httpclient


@dataclass(frozen=True)
class Answer:
    started: float
    finished: float
    version: str
    value: float


@dataclass
class LoadGenerator:
    url: str
    model: str
    threads: int = 3
    max_seconds: float = 180.0  # stops by itself even if the test forgets to
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers = [
            threading.Thread(target=self._run, daemon=True) for _ in range(self.threads)
        ]

    def _run(self) -> None:
        client = httpclient.InferenceServerClient(self.url, network_timeout=60.0)
        deadline = time.monotonic() + self.max_seconds
        try:
            while not self._stop.is_set() and time.monotonic() < deadline:
                tensor = httpclient.InferInput("x", [1, 3], "FP32")
                tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
                started = time.monotonic()
                try:
                    result = client.infer(self.model, [tensor])
                except Exception as error:  # every failure counts, whatever its kind
                    with self._lock:
                        self.failures.append(str(error))
                    continue
                answer = Answer(
                    started,
                    time.monotonic(),
                    str(result.get_response()["model_version"]),
                    float(result.as_numpy("y")[0, 0]),
                )
                with self._lock:
                    self.answers.append(answer)
        finally:
            client.close()

    def __enter__(self) -> LoadGenerator:
        for worker in self._workers:
            worker.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=90)


def infer_once(url: str, model: str, input_name: str = "x", output: str = "y") -> tuple[str, float]:
    """(version that answered, first output value) for an input of ones."""
    client = httpclient.InferenceServerClient(url)
    try:
        tensor = httpclient.InferInput(input_name, [1, 3], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
        result = client.infer(model, [tensor])
        return str(result.get_response()["model_version"]), float(result.as_numpy(output)[0, 0])
    finally:
        client.close()
