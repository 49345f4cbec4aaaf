"""The targets' rules on hand-made measurements (no server): met, not met, and inconclusive
(with the reason) wherever the measurement cannot grade the target."""

from __future__ import annotations

from dataclasses import replace

import pytest
from inference_tools.perf.perf_analyzer import LoadLevel, Measurement
from lab.perf.inprocess import InProcessResult
from lab.perf.ratios import (
    INCONCLUSIVE,
    MET,
    NOT_MET,
    PARALLEL_ROLE,
    Ratio,
    latency_overhead,
    latency_ratio,
    microservice_latency,
    microservice_ratio,
    microservice_ratio_ceiling,
    throughput_ratio,
)
from lab.perf.results import InProcessRow


def level(concurrency: int, throughput: float, p50_ms: float, p99_ms: float) -> Measurement:
    latency = {50: p50_ms * 1000, 90: p99_ms * 1000, 95: p99_ms * 1000, 99: p99_ms * 1000}
    return Measurement(
        LoadLevel("concurrency", concurrency), throughput, latency, None, server=None
    )


def batch1(role: str, p50_ms: float) -> InProcessRow:
    latency = {p: p50_ms * 1000 for p in (50, 90, 95, 99)}
    return InProcessRow(role, InProcessResult("batch 1", 1, 100.0, latency, 10))


def batch(size: int, throughput: float) -> InProcessRow:
    latency = {p: 1000.0 * size for p in (50, 90, 95, 99)}
    return InProcessRow("batch", InProcessResult(f"batch {size}", size, throughput, latency, 10))


def test_microservice_target_compares_the_best_levels_within_100_ms() -> None:
    triton = [level(1, 50, 5, 20), level(8, 300, 20, 90), level(32, 500, 60, 250)]
    microservice = [level(1, 80, 10, 40), level(4, 120, 30, 120)]
    ratio = microservice_ratio(triton, microservice)
    assert ratio.value == 300 / 80 and ratio.verdict == MET


def test_a_microservice_that_served_nothing_within_the_bound_is_no_comparison() -> None:
    slow = [level(1, 50, 80, 150)]
    fast = [level(1, 40, 5, 20)]
    # Triton met the bound, the baseline nowhere: any multiple of nothing is no multiple.
    only_triton = microservice_ratio(fast, slow)
    assert only_triton.value is None and only_triton.verdict == INCONCLUSIVE
    assert only_triton.reason is not None and "no comparison" in only_triton.reason
    assert only_triton.verdict_text.startswith("inconclusive: no comparison")
    # Neither met it, or the baseline's only level within the bound served nothing.
    assert microservice_ratio(slow, slow).verdict == INCONCLUSIVE
    assert microservice_ratio(fast, [level(1, 0, 5, 20)]).verdict == INCONCLUSIVE
    assert microservice_ratio(fast, []).verdict == INCONCLUSIVE


def test_triton_missing_the_bound_where_the_microservice_met_it_is_not_met() -> None:
    ratio = microservice_ratio([level(1, 50, 80, 150)], [level(1, 40, 5, 20)])
    assert ratio.value == 0.0 and ratio.verdict == NOT_MET
    assert ratio.verdict_text == "**not met**"


def test_latency_overhead_is_held_against_the_served_thread_setting() -> None:
    rows = [
        batch1("batch1-before", 3.0),
        batch1("served-threads-before", 7.0),
        batch1("served-threads-after", 8.0),
    ]
    ratio = latency_overhead([level(1, 100, 8.0, 20)], rows)
    assert ratio.value == 0.5 and ratio.unit == "ms" and ratio.verdict == MET
    assert ratio.value_text == "0.50 ms"
    assert latency_overhead([level(1, 100, 9.0, 20)], rows).verdict == NOT_MET


def test_a_negative_overhead_is_inconclusive() -> None:
    rows = [batch1("served-threads-before", 6.0), batch1("served-threads-after", 6.5)]
    ratio = latency_overhead([level(1, 100, 3.0, 20)], rows)
    assert ratio.value is not None and ratio.value < 0
    assert ratio.verdict == INCONCLUSIVE and "negative overhead" in (ratio.reason or "")


def test_a_floor_whose_runs_disagree_by_more_than_20_percent_is_inconclusive() -> None:
    # The c1 overhead that once read -3.09 ms "met": its floor's second run was twice the first.
    rows = [
        batch1("batch1-before", 4.0),
        batch1("batch1-after", 8.0),
        batch1("served-threads-before", 4.0),
        batch1("served-threads-after", 8.5),
    ]
    overhead = latency_overhead([level(1, 100, 6.5, 20)], rows)
    assert overhead.verdict == INCONCLUSIVE and "disagree by" in (overhead.reason or "")
    assert "disagree by" in (latency_ratio([level(1, 100, 6.5, 20)], rows).reason or "")
    # Within 20 %, the two runs are averaged into the floor.
    agreeing = [batch1("served-threads-before", 6.0), batch1("served-threads-after", 7.0)]
    assert latency_overhead([level(1, 100, 7.0, 20)], agreeing).verdict == MET


def test_a_served_throughput_above_the_in_process_floor_is_a_floor_failure() -> None:
    rows = [batch(1, 100), batch(8, 250), batch(64, 300)]
    ratio = throughput_ratio([level(16, 360, 40, 90)], rows)
    assert ratio.value == 1.2 and ratio.verdict == INCONCLUSIVE
    assert (ratio.reason or "").startswith("floor failure")
    assert throughput_ratio([level(16, 280, 40, 90)], rows).verdict == MET
    assert throughput_ratio([level(16, 200, 40, 90)], rows).verdict == NOT_MET


def test_a_floor_that_does_not_rise_with_batch_size_is_a_floor_failure() -> None:
    # Batches 2 and 4 slower than batch 1: a disturbed run, not the hardware's capacity.
    rows = [batch(1, 100), batch(2, 70), batch(4, 60), batch(8, 110)]
    ratio = throughput_ratio([level(16, 105, 40, 90)], rows)
    assert ratio.verdict == INCONCLUSIVE
    assert "does not rise with batch size" in (ratio.reason or "")
    # Small dips within the tolerance are noise, not a failure.
    rows = [batch(1, 100), batch(2, 95), batch(4, 180), batch(8, 240)]
    assert throughput_ratio([level(16, 230, 40, 90)], rows).verdict == MET


def test_a_throughput_floor_whose_batch_1_runs_disagree_is_inconclusive() -> None:
    rows = [batch1("batch1-before", 8.0), batch1("batch1-after", 15.0), batch(1, 100)]
    rows += [batch(8, 240)]
    ratio = throughput_ratio([level(16, 230, 40, 90)], rows)
    assert ratio.verdict == INCONCLUSIVE and "disagree by" in (ratio.reason or "")


def test_a_ratio_for_reading_has_no_verdict_and_the_spread_is_shown() -> None:
    reading = Ratio("k", "t", 2.0, None, True, "e")
    assert reading.verdict is None and reading.verdict_text == "-"
    graded = Ratio("k", "t", 2.0, 1.5, True, "e", spread=(1.8, 2.4))
    assert graded.verdict == MET and graded.value_text == "2.00x (1.80x to 2.40x)"
    per_core = Ratio("k", "t", 1200.0, 1000, True, "e", unit="texts/s", spread=(1100, 1300))
    assert per_core.value_text == "1200 (1100 to 1300) texts/s"
    unmeasured = Ratio("k", "t", None, 1.5, True, "e")
    assert unmeasured.verdict == INCONCLUSIVE and unmeasured.reason == "not measured"


def test_the_spread_of_repeated_runs_comes_with_the_ratio() -> None:
    triton = [replace(level(16, 300, 40, 90), run_throughputs_per_s=(270.0, 300.0, 330.0))]
    microservice = [replace(level(4, 100, 30, 80), run_throughputs_per_s=(90.0, 100.0, 110.0))]
    ratio = microservice_ratio(triton, microservice)
    assert ratio.value == 3.0 and ratio.spread == pytest.approx((270 / 110, 330 / 90))
    throughput = throughput_ratio(triton, [batch(1, 100), batch(8, 400)])
    assert throughput.spread == pytest.approx((270 / 400, 330 / 400))
    assert throughput.value_text == "0.75x (0.68x to 0.83x)"


def test_the_microservice_latency_is_a_difference_that_may_be_negative() -> None:
    slower = microservice_latency([level(1, 50, 12.5, 30)], [level(1, 60, 11.0, 30)])
    assert slower.value == pytest.approx(1.5) and slower.verdict == NOT_MET
    sooner = microservice_latency([level(1, 50, 10.0, 30)], [level(1, 60, 11.0, 30)])
    assert sooner.value == pytest.approx(-1.0) and sooner.verdict == MET
    assert microservice_latency([level(1, 50, 10.0, 30)], []).verdict == INCONCLUSIVE


def test_the_ceiling_counts_the_floor_as_served_with_one_caller_per_instance() -> None:
    microservice = [level(2, 100.0, 10, 90)]
    sweep = [batch(1, 60.0), batch(8, 62.0)]
    assert microservice_ratio_ceiling(microservice, sweep) == pytest.approx(0.62)
    parallel = InProcessRow(
        PARALLEL_ROLE, InProcessResult("batch 1, 2 callers", 1, 115.0, {50: 1.0, 99: 2.0}, 10)
    )
    assert microservice_ratio_ceiling(microservice, [*sweep, parallel]) == pytest.approx(1.15)
