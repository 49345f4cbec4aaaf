"""A client sending one text is served while the largest requests hold the encoder.

The largest request (max_batch_size texts sharing the request's text bytes, each past the 256
tokens the encoder reads) keeps an encoder execution busy for seconds, and an execution runs
to its end. With a session per thread slot (two), three of them in flight left a one-text
request queued behind them until the 2 s queue timeout refused it (503, seen with this test);
the encoder now has spare sessions, so it is answered while all three still run.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from inference_tools.model_config import read_model_config
from inference_tools.triton_metrics import scrape_per_model

from python_backend.contract import ENSEMBLE, TOKENIZER
from tests.clients import client_for, embed

pytestmark = pytest.mark.server

LOOPERS = 3
WORDS = b"servers embed many sentences of plain english words for their clients "


def largest_texts(model_repository) -> list[bytes]:
    batch = read_model_config(model_repository / ENSEMBLE / "config.pbtxt").max_batch_size
    tokenizer = read_model_config(model_repository / TOKENIZER / "config.pbtxt")
    request_bytes = int(tokenizer.parameters["max_request_text_bytes"].string_value)
    text = (WORDS * (request_bytes // batch // len(WORDS) + 1))[: request_bytes // batch]
    return [text] * batch


def tokenized(metrics_url: str) -> float:
    return scrape_per_model(metrics_url, "nv_inference_request_success").get(TOKENIZER, 0.0)


def test_one_text_is_answered_before_the_largest_requests_in_flight(
    triton_server, model_repository
):
    texts = largest_texts(model_repository)

    def send_largest(_: int):
        client = client_for(triton_server, "grpc")
        try:
            return embed(client, "grpc", texts)
        finally:
            client.close()

    before = tokenized(triton_server.metrics_url)
    with ThreadPoolExecutor(max_workers=LOOPERS) as pool:
        largest = [pool.submit(send_largest, n) for n in range(LOOPERS)]
        # Every largest request has left the tokenizer: the encoder holds all of them.
        deadline = time.monotonic() + 120
        while tokenized(triton_server.metrics_url) < before + LOOPERS:
            assert time.monotonic() < deadline, "the largest requests never reached the encoder"
            assert not any(f.done() for f in largest), [f.exception() for f in largest]
            time.sleep(0.02)
        small = client_for(triton_server, "http")
        try:
            (vector,) = embed(small, "http", ["one short text"])
        finally:
            small.close()
        still_running = sum(not f.done() for f in largest)
        results = [f.result() for f in largest]
    assert vector.shape == (384,)
    assert still_running == LOOPERS
    assert all(r.shape == (len(texts), 384) for r in results)
