"""What the capacity simulation is fed: the local Triton's time per batch size and its start-up.

Batches of `b` texts from the benchmark data set go to the ensemble one at a time (nothing else
queues), and Triton's own counters give the server time per request; start-up is the time from
launching tritonserver to its readiness, i.e. loading every model.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from inference_tools.local_server import LocalTritonServer
from inference_tools.model_config import roles_from_folder
from inference_tools.perf.dataset import generate_texts
from inference_tools.triton_metrics import scrape_per_model

from lab.autoscaling.simulator import ServiceTimes
from lab.repository_copy import lift_token_budget, linked_copy

DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)


@dataclass(frozen=True)
class Measurements:
    batch_sizes: tuple[int, ...]
    seconds_per_batch: tuple[float, ...]
    model_load_seconds: float
    repeats: int
    machine: str

    def service_times(self) -> ServiceTimes:
        return ServiceTimes(self.batch_sizes, self.seconds_per_batch)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> Measurements:
        data = json.loads(path.read_text())
        return cls(
            batch_sizes=tuple(data["batch_sizes"]),
            seconds_per_batch=tuple(data["seconds_per_batch"]),
            model_load_seconds=float(data["model_load_seconds"]),
            repeats=int(data["repeats"]),
            machine=str(data["machine"]),
        )


def measure_model_load_seconds(model_repository: Path) -> float:
    server = LocalTritonServer(model_repository)
    started = time.monotonic()
    server.start(timeout_s=300)
    try:
        return time.monotonic() - started
    finally:
        server.stop()


def measure_batches(
    server: LocalTritonServer,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    repeats: int = 4,
) -> list[float]:
    """Seconds per batch of each size, averaged over the data set's kinds of text by share.

    Triton's dynamic batcher merges only requests of one sequence length (the tokenizer pads
    each request to a bucket), so a served batch holds texts of one kind: each kind is measured
    on its own, and the kinds are weighted as the data set mixes them.
    """
    import tritonclient.http as http

    model, text_input = _text_model(server)
    by_kind: dict[str, list[str]] = {}
    for text in generate_texts():
        by_kind.setdefault(text.kind, []).append(text.text)
    total = sum(len(texts) for texts in by_kind.values())
    client = http.InferenceServerClient(server.http_url)
    seconds = []
    for size in batch_sizes:
        weighted = 0.0
        for texts in by_kind.values():
            before = _server_totals(server, model)
            for repeat in range(repeats):
                batch = [texts[(repeat * size + i) % len(texts)] for i in range(size)]
                data = np.array([[t.encode()] for t in batch], dtype=np.object_)
                infer_input = http.InferInput(text_input, list(data.shape), "BYTES")
                infer_input.set_data_from_numpy(data)
                client.infer(model, [infer_input])
            after = _server_totals(server, model)
            per_batch = (after[0] - before[0]) / (after[1] - before[1]) / 1e6
            weighted += per_batch * len(texts) / total
        seconds.append(weighted)
    client.close()
    return seconds


def _text_model(server: LocalTritonServer) -> tuple[str, str]:
    """The repository's default measured model (model_roles) and its text input."""
    roles = roles_from_folder(server.model_repository)
    model = roles.default_measured_model()
    text_input = roles.text_input(model)
    if text_input is None:
        raise ValueError(f"{model} takes no single text input: the simulation measures texts")
    return model, text_input


def _server_totals(server: LocalTritonServer, model: str) -> tuple[float, float]:
    duration = scrape_per_model(server.metrics_url, "nv_inference_request_duration_us")
    success = scrape_per_model(server.metrics_url, "nv_inference_request_success")
    return duration.get(model, 0.0), success.get(model, 0.0)


def measure(
    model_repository: Path,
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    repeats: int = 4,
    machine: str = "",
) -> Measurements:
    load_seconds = measure_model_load_seconds(model_repository)
    # A batch of b texts in one request stands for the batch the server forms from b one-text
    # requests: no client's, so the per-request token budget does not apply to it.
    with tempfile.TemporaryDirectory(prefix="service-times-") as folder:
        copy = lift_token_budget(linked_copy(model_repository, Path(folder) / "repository"))
        with LocalTritonServer(copy) as server:
            measure_batches(server, batch_sizes[:1], repeats=2)  # warm-up
            seconds = measure_batches(server, batch_sizes, repeats)
    return Measurements(tuple(batch_sizes), tuple(seconds), load_seconds, repeats, machine)
