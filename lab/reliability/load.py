"""Client load for the fault scenarios: every request's outcome and latency, nothing sampled.

Two shapes of load:
- closed loop (`ClosedLoopLoad`): N workers, each sending its next request when the last one
  answers, like a pool of client connections. HTTP workers speak plain JSON over one keep-alive
  connection each (what curl or a requests session does); gRPC workers use tritonclient.
- open loop (`open_loop_grpc`): requests at a fixed rate whatever the server does, which is
  how overload arrives from many independent users.
"""

from __future__ import annotations

import functools
import http.client
import itertools
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from inference_tools.grpc_retry import retrying_channel_args
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from python_backend.contract import EMBEDDING, EMBEDDING_SIZE, ENSEMBLE, TEXT

LOG = logging.getLogger(__name__)
MODEL = ENSEMBLE
OK = "ok"
HTTP_TIMEOUT_S = 60.0
PROTOCOL_NAMES = {"http": "HTTP", "grpc": "gRPC"}


@dataclass(frozen=True)
class Outcome:
    sent_at_s: float  # seconds since the load started
    latency_s: float
    status: str  # OK, an HTTP status ("503"), a gRPC code ("UNAVAILABLE") or an exception name
    message: str = ""
    # Of the latency, the time a request due on an open loop waited for a free worker (client
    # side, before it was sent); 0 where requests are sent when due.
    waited_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass
class LoadRecord:
    """Outcomes of one load run, appended from many threads."""

    outcomes: list[Outcome] = field(default_factory=list)
    started_at: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(
        self, sent_at: float, status: str, message: str = "", *, picked_at: float | None = None
    ) -> None:
        now = time.monotonic()
        waited = 0.0 if picked_at is None else max(0.0, picked_at - sent_at)
        outcome = Outcome(sent_at - self.started_at, now - sent_at, status, message[:300], waited)
        with self._lock:
            self.outcomes.append(outcome)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    @property
    def sent(self) -> int:
        return len(self.snapshot())

    def failures(self) -> list[Outcome]:
        return [o for o in self.snapshot() if not o.ok]

    def by_status(self) -> Counter[str]:
        return Counter(o.status for o in self.snapshot())

    def failure_summary(self, limit: int = 5) -> str:
        failures = self.failures()
        examples = "; ".join(
            f"{o.status} at {o.sent_at_s:.1f}s: {o.message}" for o in failures[:limit]
        )
        return f"{len(failures)} of {self.sent} failed ({dict(self.by_status())}) {examples}"

    def seconds_without_success(self, after_s: float) -> float | None:
        """From `after_s` to the start of the first successful request sent after it."""
        later = [o.sent_at_s for o in self.snapshot() if o.ok and o.sent_at_s >= after_s]
        return min(later) - after_s if later else None


def latency_percentile_s(outcomes: list[Outcome], percentile: float) -> float:
    if not outcomes:
        return float("nan")
    return float(np.percentile([o.latency_s for o in outcomes], percentile))


def request_texts(index: int, count: int = 1) -> list[str]:
    # Varied but short: every request tokenizes to the smallest sequence bucket, so the work per
    # request is the same all along a run.
    return [f"reliability check sentence number {index}.{row}" for row in range(count)]


def text_tensor(index: int, count: int = 1) -> grpcclient.InferInput:
    rows = np.array([[text.encode()] for text in request_texts(index, count)], dtype=object)
    tensor = grpcclient.InferInput(TEXT, list(rows.shape), "BYTES")
    tensor.set_data_from_numpy(rows)
    return tensor


class HttpEmbeddingClient:
    """A client of the embedding model: one keep-alive HTTP/1.1 connection sending KServe v2 JSON
    requests, one per call."""

    def __init__(
        self,
        address: str,
        texts_per_request: int = 1,
        timeout_s: float = HTTP_TIMEOUT_S,
        *,
        texts: Callable[[int, int], list[str]] = request_texts,
        source_host: str | None = None,
    ) -> None:
        self.texts_per_request = texts_per_request
        host, port = address.rsplit(":", 1)
        self._host, self._port, self._timeout_s = host, int(port), timeout_s
        self._texts = texts
        # A loopback source address of its own (127.0.0.N) makes the client a distinct client
        # address for the edge's per-client limits.
        self._source = (source_host, 0) if source_host else None
        self._connection: http.client.HTTPConnection | None = None

    def __call__(self, index: int) -> tuple[str, str]:
        texts = self._texts(index, self.texts_per_request)
        tensor = {"name": TEXT, "shape": [len(texts), 1], "datatype": "BYTES", "data": texts}
        body = json.dumps({"inputs": [tensor]})
        if self._connection is None:
            self._connection = http.client.HTTPConnection(
                self._host, self._port, timeout=self._timeout_s, source_address=self._source
            )
        try:
            self._connection.request(
                "POST",
                f"/v2/models/{MODEL}/infer",
                body=body,
                headers={"Content-Type": "application/json"},
            )
            response = self._connection.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as error:
            # The connection is unusable; the next request opens a new one.
            self.close()
            return type(error).__name__, str(error)
        if response.will_close:
            self.close()
        if response.status != 200:
            return str(response.status), payload.decode(errors="replace")
        outputs = json.loads(payload).get("outputs", [])
        if not outputs or len(outputs[0].get("data", [])) != EMBEDDING_SIZE * len(texts):
            return "bad response", payload[:200].decode(errors="replace")
        return OK, ""

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def grpc_client(address: str, retry: bool = False) -> grpcclient.InferenceServerClient:
    """A tritonclient gRPC client; with `retry`, the project's retry policy (grpc_retry)."""
    return grpcclient.InferenceServerClient(
        address, channel_args=retrying_channel_args() if retry else None
    )


class GrpcEmbeddingClient:
    """A tritonclient gRPC client sending the embedding model one request per call."""

    def __init__(self, address: str, texts_per_request: int = 1, retry: bool = False) -> None:
        self._client = grpc_client(address, retry)
        self.texts_per_request = texts_per_request

    def __call__(self, index: int) -> tuple[str, str]:
        tensor = text_tensor(index, self.texts_per_request)
        try:
            result = self._client.infer(MODEL, [tensor], client_timeout=HTTP_TIMEOUT_S)
        except InferenceServerException as error:
            return grpc_status(error), error.message() or ""
        embedding = result.as_numpy(EMBEDDING)
        if embedding is None or embedding.shape != (self.texts_per_request, EMBEDDING_SIZE):
            return "bad response", f"EMBEDDING shape {getattr(embedding, 'shape', None)}"
        return OK, ""

    def close(self) -> None:
        self._client.close()


def infer_once(
    address: str, model: str, input_name: str, rows: np.ndarray, output_name: str
) -> tuple[str, str, np.ndarray | None]:
    """One request on a new gRPC connection, closed after: (status, message, output)."""
    client = grpcclient.InferenceServerClient(address)
    try:
        tensor = grpcclient.InferInput(input_name, list(rows.shape), np_to_triton_dtype(rows.dtype))
        tensor.set_data_from_numpy(rows)
        result = client.infer(model, [tensor], client_timeout=HTTP_TIMEOUT_S)
        return OK, "", result.as_numpy(output_name)
    except InferenceServerException as error:
        return grpc_status(error), error.message() or "", None
    finally:
        client.close()


def grpc_status(error: InferenceServerException) -> str:
    """'StatusCode.UNAVAILABLE' -> 'UNAVAILABLE'."""
    return str(error.status() or "unknown").removeprefix("StatusCode.")


def embedding_client(
    protocol: str, address: str, texts_per_request: int = 1, grpc_retry: bool = False
) -> HttpEmbeddingClient | GrpcEmbeddingClient:
    if protocol == "http":
        return HttpEmbeddingClient(address, texts_per_request)
    if protocol == "grpc":
        return GrpcEmbeddingClient(address, texts_per_request, retry=grpc_retry)
    raise ValueError(f"unknown protocol {protocol!r}")


class ClosedLoopLoad:
    """`workers` clients per protocol sending back to back until `stop()`.

    `targets` maps a protocol to the address to send to (a server or a proxy in front of it).
    `sender(protocol, address, texts_per_request)` makes each worker's client: by default one
    that asks text_embedding for embeddings; any callable `(index) -> (status, message)` with a
    `close()` will do.
    """

    def __init__(
        self,
        targets: dict[str, str],
        workers: int,
        *,
        texts_per_request: int = 1,
        think_time_s: float = 0.0,
        sender: Callable[[str, str, int], Any] | None = None,
        grpc_retry: bool = False,
    ) -> None:
        self.targets = targets
        self.sender = sender or functools.partial(embedding_client, grpc_retry=grpc_retry)
        self.grpc_retry = grpc_retry
        self.texts_per_request = texts_per_request
        self.workers = workers
        self.think_time_s = think_time_s
        self.record = LoadRecord()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._counter = itertools.count()

    def start(self) -> ClosedLoopLoad:
        self.record = LoadRecord()
        for protocol, address in self.targets.items():
            for index in range(self.workers):
                thread = threading.Thread(
                    target=self._work,
                    args=(protocol, address),
                    name=f"load-{protocol}-{index}",
                    daemon=True,
                )
                thread.start()
                self._threads.append(thread)
        return self

    def _work(self, protocol: str, address: str) -> None:
        send = self.sender(protocol, address, self.texts_per_request)
        try:
            while not self._stop.is_set():
                sent_at = time.monotonic()
                status, message = send(next(self._counter))
                self.record.add(sent_at, status, message)
                if self.think_time_s:
                    self._stop.wait(self.think_time_s)
        finally:
            send.close()

    def stop(self) -> LoadRecord:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=HTTP_TIMEOUT_S + 5)
        self._threads.clear()
        return self.record

    def __enter__(self) -> ClosedLoopLoad:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def open_loop_grpc(
    address: str,
    rate_per_s: float,
    duration_s: float,
    *,
    texts_per_request: int = 1,
    on_tick: Callable[[float], None] | None = None,
    retry: bool = False,
) -> LoadRecord:
    """Send `rate_per_s` requests per second for `duration_s`, not waiting for answers.

    Returns once every request has been answered (or has timed out on the client).
    """
    client = grpc_client(address, retry)
    record = LoadRecord()
    answered = threading.Semaphore(0)
    interval_s = 1.0 / rate_per_s
    total = int(rate_per_s * duration_s)
    try:
        for index in range(total):
            due = record.started_at + index * interval_s
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if on_tick is not None:
                on_tick(time.monotonic() - record.started_at)
            tensor = text_tensor(index, texts_per_request)
            sent_at = time.monotonic()

            def done(result, error, sent_at=sent_at) -> None:
                if error is None:
                    record.add(sent_at, OK)
                else:
                    record.add(sent_at, grpc_status(error), error.message() or "")
                answered.release()

            client.async_infer(MODEL, [tensor], done, client_timeout=HTTP_TIMEOUT_S)
        for _ in range(total):
            answered.acquire(timeout=HTTP_TIMEOUT_S + 5)
    finally:
        client.close()
    return record


NOT_SENT = "not sent"


def open_loop_http(
    address: str,
    rate_per_s: float,
    duration_s: float,
    *,
    workers: int,
    stop: threading.Event | None = None,
    record: LoadRecord | None = None,
) -> LoadRecord:
    """Offer `rate_per_s` requests per second for `duration_s` over HTTP, each on a new
    connection (so that a Service's kube-proxy picks an endpoint per request), sent by at most
    `workers` at once.

    A request due while every worker is busy waits on the client, and its latency counts from
    the moment it was due: the offered rate stays what it was, whatever the server serves.
    Requests still waiting when the time is up (or `stop` is set) are recorded as NOT_SENT.
    """
    record = record or LoadRecord()
    stop = stop or threading.Event()
    due: queue.Queue[tuple[int, float] | None] = queue.Queue()

    def work() -> None:
        while (item := due.get()) is not None:
            index, due_at = item
            if stop.is_set():
                record.add(due_at, NOT_SENT)
                continue
            picked_at = time.monotonic()
            client = HttpEmbeddingClient(address)
            try:
                status, message = client(index)
            finally:
                client.close()
            record.add(due_at, status, message, picked_at=picked_at)

    threads = [threading.Thread(target=work, name=f"open-loop-{n}", daemon=True)
               for n in range(workers)]  # fmt: skip
    for thread in threads:
        thread.start()
    interval_s = 1.0 / rate_per_s
    for index in range(int(rate_per_s * duration_s)):
        due_at = record.started_at + index * interval_s
        if stop.wait(max(0.0, due_at - time.monotonic())):
            break
        due.put((index, due_at))
    # Time is up: what has not started is dropped, what is in flight is answered.
    stop.set()
    for _ in threads:
        due.put(None)
    for thread in threads:
        thread.join(timeout=HTTP_TIMEOUT_S + 5)
    return record
