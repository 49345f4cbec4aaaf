"""The microservice baseline is the one a competent user writes: the served encoder's session
options, and requests served in parallel up to the same CPU budget as Triton's encoder."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from fastapi.testclient import TestClient
from inference_tools.onnx_model import SPINNING_CONFIG_KEY
from lab.perf.inprocess_baseline import encoder_instances, served_session_options
from lab.perf.microservice import ENDPOINT, MicroserviceProcess, create_app

from tests.checkout import MODEL_REPOSITORY


class SlowPipeline:
    """Records how many calls run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most_at_once = 0
        self.lock = threading.Lock()

    def embed(self, texts: list[str]) -> np.ndarray:
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        time.sleep(0.3)
        with self.lock:
            self.running -= 1
        return np.zeros((len(texts), 4), dtype=np.float32)


def test_requests_run_in_parallel_up_to_the_cpu_budget_and_no_further() -> None:
    pipeline = SlowPipeline()
    app = create_app(pipeline, workers=2)  # type: ignore[arg-type]
    with TestClient(app) as client, ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(
            pool.map(lambda i: client.post(f"/{ENDPOINT}", json={"input": f"t{i}"}), range(6))
        )
    assert all(a.status_code == 200 for a in answers)
    # An `async def` endpoint would have run them one at a time on the event loop.
    assert pipeline.most_at_once == 2


def test_the_baseline_gets_the_served_encoders_session_options() -> None:
    options = served_session_options(MODEL_REPOSITORY)
    assert options.get_session_config_entry(SPINNING_CONFIG_KEY) == "0"
    assert options.intra_op_num_threads == 1  # minilm's intra_op_thread_count
    service = MicroserviceProcess(MODEL_REPOSITORY, Path("unused.log"))
    assert service.workers == encoder_instances(MODEL_REPOSITORY) == 2
    assert "threadpool of 2" in service.settings_text
    assert "spinning off" in service.settings_text
