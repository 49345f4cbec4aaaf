"""Under concurrent load the encoder really runs batches, and the metrics show it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from inference_tools.triton_metrics import fetch_metrics_text, per_model, scrape_per_model

from python_backend.contract import COMPOSING_MODELS, ENSEMBLE
from tests.clients import embed

pytestmark = pytest.mark.server
REQUESTS = 256
CONCURRENCY = 32


def test_metrics_endpoint_exposes_per_model_counters(triton_server, connect):
    embed(connect("http"), "http", ["count me"])
    text = fetch_metrics_text(triton_server.metrics_url)
    for metric in (
        "nv_inference_request_success",
        "nv_inference_count",
        "nv_inference_exec_count",
        "nv_inference_queue_duration_us",
        "nv_inference_pending_request_count",
    ):
        models = per_model(text, metric)
        assert {ENSEMBLE, *COMPOSING_MODELS} <= set(models), metric
    assert per_model(text, "nv_inference_request_success")["text_embedding"] >= 1


def test_concurrent_requests_are_merged_into_encoder_batches(triton_server, connect):
    before_requests = scrape_per_model(triton_server.metrics_url, "nv_inference_request_success")
    before_execs = scrape_per_model(triton_server.metrics_url, "nv_inference_exec_count")

    client = connect("grpc")  # thread-safe; one HTTP/2 connection carries the concurrent calls

    def send(index: int) -> None:
        # Different texts of similar length: one sequence bucket, so they can share a batch.
        embed(client, "grpc", [f"query number {index} about batching"])

    with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
        list(pool.map(send, range(REQUESTS)))

    after_requests = scrape_per_model(triton_server.metrics_url, "nv_inference_request_success")
    after_execs = scrape_per_model(triton_server.metrics_url, "nv_inference_exec_count")
    requests = after_requests["minilm"] - before_requests["minilm"]
    executions = after_execs["minilm"] - before_execs["minilm"]
    print(
        f"minilm: {requests:.0f} requests in {executions:.0f} executions "
        f"({requests / executions:.1f} requests per execution)"
    )
    assert requests == REQUESTS
    assert executions <= REQUESTS / 3, f"{executions} executions for {requests} requests"
