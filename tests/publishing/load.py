"""Clients for the publishing tests: one inference, and load that records which version answered.

The load is the project's one load generator (`lab.reliability.load.ClosedLoopLoad`)
with a sender for the small test models (input `x` of ones, output `y`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tritonclient.http as httpclient
from lab.reliability.load import OK, ClosedLoopLoad


@dataclass(frozen=True)
class Answer:
    started: float
    finished: float
    version: str
    value: float


class _VersionedSender:
    """One HTTP client; each answer's status is OK and its message "<version> <first value>"."""

    def __init__(self, address: str, model: str) -> None:
        self._client = httpclient.InferenceServerClient(address, network_timeout=60.0)
        self._model = model

    def __call__(self, index: int) -> tuple[str, str]:
        tensor = httpclient.InferInput("x", [1, 3], "FP32")
        tensor.set_data_from_numpy(np.ones((1, 3), np.float32))
        try:
            result = self._client.infer(self._model, [tensor])
        except Exception as error:  # every failure counts, whatever its kind
            return type(error).__name__, str(error)
        version = result.get_response()["model_version"]
        return OK, f"{version} {float(result.as_numpy('y')[0, 0])!r}"

    def close(self) -> None:
        self._client.close()


class VersionedLoad:
    """`threads` clients sending to `model` back to back while the `with` block runs."""

    def __init__(self, url: str, model: str, threads: int = 3) -> None:
        self.load = ClosedLoopLoad(
            {"http": url},
            threads,
            sender=lambda _protocol, address, _texts: _VersionedSender(address, model),
        )

    def __enter__(self) -> VersionedLoad:
        self.load.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.load.stop()

    @property
    def answers(self) -> list[Answer]:
        record = self.load.record
        answers = []
        for outcome in record.snapshot():
            if outcome.ok:
                version, value = outcome.message.split()
                started = record.started_at + outcome.sent_at_s
                answers.append(Answer(started, started + outcome.latency_s, version, float(value)))
        return answers

    @property
    def failures(self) -> list[str]:
        return [f"{o.status}: {o.message}" for o in self.load.record.failures()]


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
