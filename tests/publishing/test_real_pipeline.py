"""The project's own text-embedding pipeline published to an empty store, then a new MiniLM
version rolled out while the ensemble is under load."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import tritonclient.http as httpclient
from inference_tools.local_server import LocalTritonServer
from inference_tools.publishing.endpoints import HttpEndpoint
from inference_tools.publishing.publisher import publish
from inference_tools.publishing.sources import read_model_source
from inference_tools.publishing.stores import LocalFolderStore

from python_backend.contract import COMPOSING_MODELS, ENSEMBLE
from tests.publishing.servers import explicit_mode_args

pytestmark = [pytest.mark.server, pytest.mark.slow]
PIPELINE = (ENSEMBLE, *COMPOSING_MODELS)


def embed(client) -> tuple[np.ndarray, str]:
    text = httpclient.InferInput("TEXT", [1, 1], "BYTES")
    text.set_data_from_numpy(np.array([[b"publishing without downtime"]], dtype=object))
    result = client.infer("text_embedding", [text])
    return result.as_numpy("EMBEDDING")[0], str(result.get_response()["model_version"])


def test_the_embedding_pipeline_publishes_and_minilm_switches_under_load(
    tmp_path, model_repository, admin
):
    store_dir = tmp_path / "store"
    store_dir.mkdir()
    store = LocalFolderStore(store_dir)
    with LocalTritonServer(store_dir, extra_args=explicit_mode_args()) as server:
        endpoints = {"local": HttpEndpoint(server.http_url)}
        first = publish(
            [read_model_source(model_repository / name) for name in PIPELINE],
            store,
            endpoints,
            admin=admin,
            report=lambda line: None,
        )
        assert first.published == [
            ("tokenizer", 1),
            ("minilm", 1),
            ("text_embedding", 1),
        ]
        client = httpclient.InferenceServerClient(server.http_url, network_timeout=120.0)
        try:
            reference, _ = embed(client)
            assert reference.shape == (384,)
            assert np.linalg.norm(reference) == pytest.approx(1.0, abs=1e-4)

            failures: list[str] = []
            answers: list[np.ndarray] = []
            stop = threading.Event()

            def send() -> None:
                own = httpclient.InferenceServerClient(server.http_url, network_timeout=120.0)
                deadline = time.monotonic() + 240
                try:
                    while not stop.is_set() and time.monotonic() < deadline:
                        try:
                            answers.append(embed(own)[0])
                        except Exception as error:  # every failure counts
                            failures.append(str(error))
                finally:
                    own.close()

            workers = [threading.Thread(target=send) for _ in range(2)]
            for worker in workers:
                worker.start()
            try:
                time.sleep(1.0)
                second = publish(
                    [read_model_source(model_repository / "minilm")],
                    store,
                    endpoints,
                    admin=admin,
                    report=lambda line: None,
                )
                time.sleep(1.0)
            finally:
                stop.set()
                for worker in workers:
                    worker.join(timeout=120)
            print(f"\nMiniLM v2 timings (s): {second.timings_s}; {len(answers)} answers")
            assert failures == []
            assert second.published == [("minilm", 2)]
            assert second.serving == [("local", "minilm", "2")]
            # Same weights in version 2: every answer, before and after the switch, agrees.
            assert len(answers) > 10
            assert all(np.allclose(a, reference, atol=1e-5) for a in answers)
        finally:
            client.close()
