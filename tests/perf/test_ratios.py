"""The targets' rules on hand-made measurements (no server)."""

from __future__ import annotations

import math

from inference_tools.perf.perf_analyzer import LoadLevel, Measurement
from lab.perf.inprocess import InProcessResult
from lab.perf.ratios import latency_overhead, microservice_ratio
from lab.perf.results import InProcessRow


def level(concurrency: int, throughput: float, p50_ms: float, p99_ms: float) -> Measurement:
    latency = {50: p50_ms * 1000, 90: p99_ms * 1000, 95: p99_ms * 1000, 99: p99_ms * 1000}
    return Measurement(
        LoadLevel("concurrency", concurrency), throughput, latency, None, server=None
    )


def batch1(role: str, p50_ms: float) -> InProcessRow:
    latency = {p: p50_ms * 1000 for p in (50, 90, 95, 99)}
    return InProcessRow(role, InProcessResult("batch 1", 1, 100.0, latency, 10))


def test_microservice_target_compares_the_best_levels_within_100_ms() -> None:
    triton = [level(1, 50, 5, 20), level(8, 300, 20, 90), level(32, 500, 60, 250)]
    microservice = [level(1, 80, 10, 40), level(4, 120, 30, 120)]
    ratio = microservice_ratio(triton, microservice)
    assert ratio.value == 300 / 80 and ratio.met


def test_microservice_target_when_one_side_never_meets_the_objective() -> None:
    slow = [level(1, 50, 80, 150)]
    fast = [level(1, 40, 5, 20)]
    assert microservice_ratio(slow, fast).value == 0.0
    only_triton = microservice_ratio(fast, slow)
    assert math.isinf(only_triton.value) and only_triton.met
    assert microservice_ratio(slow, slow).value is None


def test_latency_overhead_is_held_against_the_served_thread_setting() -> None:
    rows = [
        batch1("batch1-before", 3.0),
        batch1("served-threads-before", 6.0),
        batch1("served-threads-after", 8.0),
    ]
    ratio = latency_overhead([level(1, 100, 7.5, 20)], rows)
    assert ratio.value == 0.5 and ratio.unit == "ms" and ratio.met
    assert ratio.value_text == "0.50 ms"
