"""The floor: the pipeline called in-process, closed loop at a batch size or open loop at a rate.

Batches are formed the way Triton's dynamic batcher forms them: only texts of the same sequence
bucket go together (the batcher merges only equal shapes), so a batch of N is N texts padded to
one bucket, never a short query padded to a long document's length.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from inference_tools.perf.perf_analyzer import PERCENTILES

from lab.perf.inprocess_baseline import EmbeddingPipeline
from python_backend.tokenization import bucket_length


@dataclass(frozen=True)
class InProcessResult:
    label: str
    batch_size: int
    throughput_per_s: float  # texts per second
    latency_us: dict[int, float]  # per call: the batch's latency, or one request's in open loop
    requests: int
    offered_per_s: float | None = None  # open loop only

    def p(self, percentile: int) -> float:
        return self.latency_us[percentile]


def _percentiles(latencies_s: Sequence[float]) -> dict[int, float]:
    values = np.asarray(latencies_s) * 1e6
    return {p: float(np.percentile(values, p)) for p in PERCENTILES}


def bucketed_batches(
    pipeline: EmbeddingPipeline, texts: Sequence[str], batch_size: int
) -> list[list[str]]:
    """Texts in data-set order, grouped by sequence bucket, cut into batches of `batch_size`."""
    tokenizer = pipeline.tokenizer
    groups: dict[int, list[str]] = {}
    for text, ids in zip(texts, tokenizer.encode(texts), strict=True):
        groups.setdefault(bucket_length(len(ids), tokenizer.buckets), []).append(text)
    batches: list[list[str]] = []
    # Interleave the buckets, as mixed traffic would, instead of all short texts first.
    cursors = {bucket: 0 for bucket in groups}
    while cursors:
        for bucket in sorted(cursors):
            start = cursors[bucket]
            batches.append(groups[bucket][start : start + batch_size])
            cursors[bucket] = start + batch_size
            if cursors[bucket] >= len(groups[bucket]):
                del cursors[bucket]
    return batches


def warm_up(pipeline: EmbeddingPipeline, batches: Sequence[Sequence[str]]) -> None:
    """Run one batch of each padded shape: ONNX Runtime plans and allocates on a shape's first
    run, a cost paid once per shape in a long-running server, not per request."""
    tokenizer = pipeline.tokenizer
    seen: set[tuple[int, int]] = set()
    for batch in batches:
        longest = max(len(ids) for ids in tokenizer.encode(batch))
        shape = (len(batch), bucket_length(longest, tokenizer.buckets))
        if shape not in seen:
            seen.add(shape)
            pipeline.embed(batch)


def closed_loop(
    pipeline: EmbeddingPipeline,
    texts: Sequence[str],
    batch_size: int,
    duration_s: float,
    min_passes: int = 1,
) -> InProcessResult:
    """One caller, back to back, for `duration_s` and at least `min_passes` over the texts."""
    batches = (
        bucketed_batches(pipeline, texts, batch_size) if batch_size > 1 else [[t] for t in texts]
    )
    warm_up(pipeline, batches)
    latencies: list[float] = []
    done = 0
    start = time.perf_counter()
    deadline = start + duration_s
    passes = 0
    while passes < min_passes or time.perf_counter() < deadline:
        for batch in batches:
            t0 = time.perf_counter()
            pipeline.embed(batch)
            latencies.append(time.perf_counter() - t0)
            done += len(batch)
            if passes >= min_passes - 1 and time.perf_counter() >= deadline:
                break
        passes += 1
    elapsed = time.perf_counter() - start
    return InProcessResult(
        label=f"in-process batch {batch_size}",
        batch_size=batch_size,
        throughput_per_s=done / elapsed,
        latency_us=_percentiles(latencies),
        requests=len(latencies),
    )


def parallel_closed_loop(
    pipelines: Sequence[EmbeddingPipeline], texts: Sequence[str], duration_s: float
) -> InProcessResult:
    """One caller per pipeline, one text per call, back to back for `duration_s`: the model run
    the way the server runs it (an instance per caller, each with its own session), with no
    server at all. Its throughput is what the cores can do with this model and these settings.
    """
    for pipeline in pipelines:
        warm_up(pipeline, [[t] for t in texts])
    latencies: list[list[float]] = [[] for _ in pipelines]
    counts = [0] * len(pipelines)
    start = time.perf_counter()
    deadline = start + duration_s

    def call(index: int) -> None:
        # Callers start at different places in the data set, as clients would.
        position = index * len(texts) // len(pipelines)
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            pipelines[index].embed([texts[position % len(texts)]])
            latencies[index].append(time.perf_counter() - t0)
            counts[index] += 1
            position += 1

    callers = [threading.Thread(target=call, args=(i,)) for i in range(len(pipelines))]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    elapsed = time.perf_counter() - start
    return InProcessResult(
        label=f"in-process batch 1, {len(pipelines)} callers",
        batch_size=1,
        throughput_per_s=sum(counts) / elapsed,
        latency_us=_percentiles([x for per_caller in latencies for x in per_caller]),
        requests=sum(counts),
    )


def open_loop(
    pipeline: EmbeddingPipeline,
    texts: Sequence[str],
    rate_per_s: float,
    duration_s: float,
    distribution: str = "poisson",
    seed: int = 0,
) -> InProcessResult:
    """Requests of one text arrive at `rate_per_s`; one worker serves them in order.

    A request's latency runs from its scheduled arrival to its result, so time spent waiting
    behind earlier requests counts, as it does for a server's clients.
    """
    rng = random.Random(seed)
    count = max(1, int(rate_per_s * duration_s))
    if distribution == "poisson":
        gaps = [rng.expovariate(rate_per_s) for _ in range(count)]
    else:
        gaps = [1.0 / rate_per_s] * count
    arrivals = np.cumsum(gaps)
    inbox: queue.Queue[tuple[float, str] | None] = queue.Queue()
    latencies: list[float] = []

    def serve() -> None:
        while (item := inbox.get()) is not None:
            arrival, text = item
            pipeline.embed([text])
            latencies.append(time.perf_counter() - arrival)

    pipeline.embed([texts[0]])
    worker = threading.Thread(target=serve, daemon=True)
    worker.start()
    start = time.perf_counter()
    for index, offset in enumerate(arrivals):
        delay = start + offset - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        inbox.put((start + offset, texts[index % len(texts)]))
    inbox.put(None)
    worker.join()
    elapsed = time.perf_counter() - start
    return InProcessResult(
        label=f"in-process {rate_per_s:g} req/s {distribution}",
        batch_size=1,
        throughput_per_s=count / elapsed,
        latency_us=_percentiles(latencies),
        requests=count,
        offered_per_s=rate_per_s,
    )
