"""The largest valid request, looped by a few clients, beside a client sending one text.

One replica with the Deployment's Triton flags, behind its HTTP guard and the nginx edge. Each
client speaks HTTP from a loopback address of its own (127.0.0.N), so the edge sees distinct
clients, as it would distinct users. Three loopers send the costliest request the repository
accepts (as many full-length texts of English words as the tokenizer's token budget holds, at
most the ensemble's max_batch_size) back to back; one client sends one short text at a time.
What counts is the one-text client's latency (p99), and the memory tritonserver and its stub
processes hold before the loopers start, at their peak while they run, and a while after they
stop.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from inference_tools.model_config import configs_from_folder

from lab import process_tree
from lab.reliability.load import (
    ClosedLoopLoad,
    HttpEmbeddingClient,
    latency_percentile_s,
    request_texts,
)
from lab.reliability.local_replicas import start_replica
from lab.reliability.nginx import NginxProxy
from lab.reliability.pod_lifecycle import PodLifecycle
from lab.reliability.report import ScenarioResult
from python_backend.contract import ENSEMBLE, TOKENIZER

LOOPERS = 3
# What the one-text client must keep while the loopers run.
P99_TARGET_S = 1.0
# The client addresses: loopback has all of 127.0.0.0/8, so each client is its own address.
SMALL_CLIENT_HOST = "127.0.0.2"
LOOPER_HOSTS = tuple(f"127.0.0.{3 + n}" for n in range(LOOPERS))
WORDS = ("the quick brown fox jumps over a lazy dog while servers embed many sentences").split()  # noqa: SIM905
RSS_SAMPLE_INTERVAL_S = 0.5


@dataclass(frozen=True)
class LargestRequest:
    texts: int
    text_bytes: int


def largest_request(model_repository: Path) -> LargestRequest:
    """The costliest request the repository accepts: as many full-length texts as the
    tokenizer's token budget holds (at most the ensemble's max_batch_size), each as long as
    its byte limits allow."""
    configs = configs_from_folder(model_repository)
    parameters = configs[TOKENIZER]["parameters"]

    def limit(key: str) -> int | None:
        value = parameters.get(key)
        return int(value["string_value"]) if value is not None else None

    texts = int(configs[ENSEMBLE]["max_batch_size"])
    max_tokens, request_tokens = limit("max_tokens"), limit("max_request_tokens")
    if max_tokens is not None and request_tokens is not None:
        texts = max(1, min(texts, request_tokens // max_tokens))
    text_bytes = limit("max_text_bytes") or 0
    request_bytes = limit("max_request_text_bytes")
    if request_bytes is not None:
        text_bytes = min(text_bytes, request_bytes // texts)
    return LargestRequest(texts, text_bytes)


def long_texts(text_bytes: int, index: int, count: int) -> list[str]:
    """`count` distinct texts of English words, `text_bytes` bytes each."""
    texts = []
    for row in range(count):
        words = " ".join(WORDS[(index + row + n) % len(WORDS)] for n in range(text_bytes // 3))
        texts.append(f"{index}.{row} {words}"[:text_bytes])
    return texts


def process_tree_rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (Triton and its stubs)."""
    return process_tree.rss_bytes(process_tree.descendants(pid))


class PeakRss:
    """The largest process_tree_rss_bytes seen while running (sampled in a thread)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_bytes = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_INTERVAL_S):
            self.peak_bytes = max(self.peak_bytes, process_tree_rss_bytes(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def _client(
    host: str,
    texts: Callable[[int, int], list[str]],
    protocol: str,
    address: str,
    count: int,
) -> HttpEmbeddingClient:
    return HttpEmbeddingClient(address, count, texts=texts, source_host=host)


def run(
    model_repository: Path,
    lifecycle: PodLifecycle,
    *,
    phase_s: float = 60.0,
    settle_s: float = 60.0,
    work_dir: Path | None = None,
) -> ScenarioResult:
    largest = largest_request(model_repository)
    replica = start_replica("max-size", model_repository, lifecycle, work_dir=work_dir)
    server = replica.server
    proxy = NginxProxy([replica.endpoint]).start()
    assert server.process is not None
    mib = 2**20
    try:
        targets = {"http": proxy.http_url}
        rss_before = process_tree_rss_bytes(server.process.pid)
        loopers = [
            ClosedLoopLoad(
                targets,
                workers=1,
                texts_per_request=largest.texts,
                sender=functools.partial(
                    _client, host, functools.partial(long_texts, largest.text_bytes)
                ),
            )
            for host in LOOPER_HOSTS
        ]
        small = ClosedLoopLoad(
            targets,
            workers=1,
            think_time_s=0.05,
            sender=functools.partial(_client, SMALL_CLIENT_HOST, request_texts),
        )
        with PeakRss(server.process.pid) as peak:
            for looper in loopers:
                looper.start()
            time.sleep(2.0)  # every looper's first request is in
            with small:
                time.sleep(phase_s)
            small_record = small.record
            looper_records = [looper.stop() for looper in loopers]
        time.sleep(settle_s)
        rss_after = process_tree_rss_bytes(server.process.pid)
        replicas_lost = int(server.process.poll() is not None)
    finally:
        proxy.stop()
        server.stop()
    # Over every request the client sent: a refusal after the queue timeout counts as slow.
    sent = small_record.snapshot()
    served = [o for o in sent if o.ok]
    p50 = latency_percentile_s(sent, 50)
    p99 = latency_percentile_s(sent, 99)
    small_failed = len(small_record.failures())
    looper_statuses = sum((r.by_status() for r in looper_records), Counter())
    looper_sent = sum(r.sent for r in looper_records)
    passed = replicas_lost == 0 and small_failed == 0 and served and p99 < P99_TARGET_S
    notes = (
        f"one-text client p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms "
        f"(target {P99_TARGET_S * 1000:.0f} ms), {len(served)} of {len(sent)} served; "
        f"loopers answered {dict(looper_statuses)}; Triton + stubs RSS "
        f"{rss_before / mib:.0f} MiB before, "
        f"{peak.peak_bytes / mib:.0f} MiB peak, {rss_after / mib:.0f} MiB {settle_s:g} s after"
    )
    return ScenarioResult(
        scenario="largest requests looped beside a one-text client",
        load=f"1 one-text HTTP client + {LOOPERS} loopers of {largest.texts} texts x "
        f"{largest.text_bytes} bytes, each client its own address, via nginx, 1 replica",
        faults=f"{LOOPERS} clients looping the largest valid request for {phase_s:g} s",
        requests_sent=small_record.sent + looper_sent,
        requests_failed=small_failed,
        recovery_s=None,
        passed=bool(passed),
        notes=notes,
        details={
            "small_p50_s": p50,
            "small_p99_s": p99,
            "small_served": len(served),
            "small_failed": small_failed,
            "small_failure_summary": small_record.failure_summary(),
            "looper_sent": looper_sent,
            "looper_answers": dict(looper_statuses),
            "rss_before_bytes": rss_before,
            "rss_peak_bytes": peak.peak_bytes,
            "rss_after_bytes": rss_after,
            "replicas_lost": replicas_lost,
        },
    )
