"""The targets, as ratios (or differences) between systems measured in one run on one machine.

Absolute times on a shared two-core machine move by tens of percent from one minute to the next;
ratios of measurements taken back to back move much less, so the targets are stated as ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from inference_tools.perf.perf_analyzer import Measurement

from lab.perf.results import InProcessRow

# Roles of the in-process rows (results.InProcessRow.role) that the targets read.
BATCH1_ROLE_PREFIX = "batch1"  # the floor's better thread setting, before and after Triton's c1
SERVED_THREADS_ROLE_PREFIX = "served-threads"  # the thread setting the encoder is served with
# The latency a client accepts in the microservice comparison.
P99_LIMIT_US = 100_000.0


@dataclass(frozen=True)
class Ratio:
    key: str
    title: str
    value: float | None  # None: a side of it was not measured
    target: float | None  # None: reported for reading, no target
    higher_is_better: bool
    explanation: str
    unit: str = "x"  # "x" for a ratio, "ms" for a difference

    @property
    def met(self) -> bool | None:
        if self.value is None or self.target is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:g}{self._unit_suffix}"

    @property
    def value_text(self) -> str:
        if self.value is None:
            return "not measured"
        if math.isinf(self.value):
            return "∞ (the other side met it nowhere)"
        digits = 2 if self.unit in ("x", "ms") else 0
        return f"{self.value:.{digits}f}{self._unit_suffix}"

    @property
    def _unit_suffix(self) -> str:
        return "x" if self.unit == "x" else f" {self.unit}"


def concurrency_sweep(measurements: Sequence[Measurement]) -> list[Measurement]:
    return sorted(
        (m for m in measurements if m.level.mode == "concurrency"), key=lambda m: m.level.value
    )


def saturation(measurements: Sequence[Measurement]) -> Measurement | None:
    """The highest-throughput level of a concurrency sweep: the system's capacity."""
    sweep = concurrency_sweep(measurements)
    return max(sweep, key=lambda m: m.throughput_per_s) if sweep else None


def inprocess_batch1_p50_us(
    rows: Sequence[InProcessRow], role_prefix: str = BATCH1_ROLE_PREFIX
) -> float | None:
    """Mean p50 of the batch-1 runs taken just before and just after Triton's concurrency 1."""
    values = [r.result.p(50) for r in rows if r.role.startswith(role_prefix)]
    return sum(values) / len(values) if values else None


def inprocess_best_batch(rows: Sequence[InProcessRow]) -> InProcessRow | None:
    closed = [r for r in rows if r.result.offered_per_s is None]
    return max(closed, key=lambda r: r.result.throughput_per_s) if closed else None


def _triton_c1_p50_us(triton: Sequence[Measurement]) -> float | None:
    at_one = next((m for m in concurrency_sweep(triton) if m.level.value == 1), None)
    return None if at_one is None else at_one.p(50)


def latency_overhead(triton: Sequence[Measurement], rows: Sequence[InProcessRow]) -> Ratio:
    served = _triton_c1_p50_us(triton)
    floor = inprocess_batch1_p50_us(rows, SERVED_THREADS_ROLE_PREFIX)
    value = None if served is None or floor is None else (served - floor) / 1000.0
    return Ratio(
        key="latency_c1_overhead",
        title="p50 at concurrency 1, Triton minus in-process batch 1 with the served threads",
        value=value,
        target=1.0,
        higher_is_better=False,
        explanation=(
            "what a lone client pays for the server itself (HTTP or gRPC, the ensemble "
            "scheduler, the tokenizer and encoder steps) with the model's work held equal"
        ),
        unit="ms",
    )


def latency_ratio(triton: Sequence[Measurement], rows: Sequence[InProcessRow]) -> Ratio:
    served = _triton_c1_p50_us(triton)
    floor = inprocess_batch1_p50_us(rows)
    value = None if served is None or floor is None else served / floor
    return Ratio(
        key="latency_c1",
        title="p50 at concurrency 1, Triton / in-process batch 1 at the floor's best threads",
        value=value,
        target=None,
        higher_is_better=False,
        explanation=(
            "for reading: includes the encoder's served thread setting, chosen for throughput"
        ),
    )


def throughput_ratio(triton: Sequence[Measurement], rows: Sequence[InProcessRow]) -> Ratio:
    best_triton = saturation(triton)
    best_floor = inprocess_best_batch(rows)
    value = (
        None
        if best_triton is None or best_floor is None
        else best_triton.throughput_per_s / best_floor.result.throughput_per_s
    )
    return Ratio(
        key="throughput_saturation",
        title="throughput at saturation, Triton ensemble / in-process at its best batch size",
        value=value,
        target=0.9,
        higher_is_better=True,
        explanation="how much of the hardware's capacity the server keeps for requests",
    )


def triton_best_within_p99(
    triton: Sequence[Measurement], p99_limit_us: float
) -> Measurement | None:
    eligible = [m for m in concurrency_sweep(triton) if m.p(99) <= p99_limit_us]
    return max(eligible, key=lambda m: m.throughput_per_s) if eligible else None


def best_within_p99(
    measurements: Sequence[Measurement], p99_limit_us: float = P99_LIMIT_US
) -> Measurement | None:
    """The highest-throughput level of a concurrency sweep whose p99 is within the limit."""
    eligible = [m for m in concurrency_sweep(measurements) if m.p(99) <= p99_limit_us]
    return max(eligible, key=lambda m: m.throughput_per_s) if eligible else None


def microservice_ratio(triton: Sequence[Measurement], microservice: Sequence[Measurement]) -> Ratio:
    ours, theirs = best_within_p99(triton), best_within_p99(microservice)
    value = None  # neither system met the objective at any level
    if theirs is not None and theirs.throughput_per_s > 0:
        value = 0.0 if ours is None else ours.throughput_per_s / theirs.throughput_per_s
    elif ours is not None:
        value = math.inf  # only Triton met it: any multiple of nothing
    return Ratio(
        key="microservice",
        title=(
            f"highest throughput with p99 ≤ {P99_LIMIT_US / 1000:g} ms, Triton / the FastAPI "
            "microservice"
        ),
        value=value,
        target=2.0,
        higher_is_better=True,
        explanation=(
            "what the server gives over the service a user would write instead, each at the "
            "most it sustains within the same latency objective"
        ),
    )


def microservice_ratio_ceiling(
    microservice: Sequence[Measurement], rows: Sequence[InProcessRow]
) -> float | None:
    """The most the microservice ratio can be on this machine: the in-process floor's best
    throughput over the microservice's. No server outruns the same model called in-process
    with no serving at all, so where this is under the target, the hardware rules it out."""
    baseline = saturation(microservice)
    floor = inprocess_best_batch(rows)
    if baseline is None or floor is None or baseline.throughput_per_s <= 0:
        return None
    return floor.result.throughput_per_s / baseline.throughput_per_s


def all_ratios(
    triton: Sequence[Measurement],
    microservice: Sequence[Measurement],
    rows: Sequence[InProcessRow],
) -> list[Ratio]:
    return [
        latency_overhead(triton, rows),
        latency_ratio(triton, rows),
        throughput_ratio(triton, rows),
        microservice_ratio(triton, microservice),
    ]
