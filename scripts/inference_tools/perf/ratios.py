"""The three targets, as ratios between systems measured in one run on one machine.

Absolute times on a shared two-core machine move by tens of percent from one minute to the next;
ratios of measurements taken back to back move much less, so the targets are stated as ratios.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from inference_tools.perf.perf_analyzer import Measurement
from inference_tools.perf.results import InProcessRow


@dataclass(frozen=True)
class Ratio:
    key: str
    title: str
    value: float | None  # None: a side of it was not measured
    target: float
    higher_is_better: bool
    explanation: str

    @property
    def met(self) -> bool | None:
        if self.value is None:
            return None
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    @property
    def target_text(self) -> str:
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:g}x"


def concurrency_sweep(measurements: Sequence[Measurement]) -> list[Measurement]:
    return sorted(
        (m for m in measurements if m.level.mode == "concurrency"), key=lambda m: m.level.value
    )


def saturation(measurements: Sequence[Measurement]) -> Measurement | None:
    """The highest-throughput level of a concurrency sweep: the system's capacity."""
    sweep = concurrency_sweep(measurements)
    return max(sweep, key=lambda m: m.throughput_per_s) if sweep else None


def inprocess_batch1_p50_us(rows: Sequence[InProcessRow]) -> float | None:
    """Mean p50 of the batch-1 runs taken just before and just after Triton's concurrency 1."""
    values = [r.result.p(50) for r in rows if r.role.startswith("batch1")]
    return sum(values) / len(values) if values else None


def inprocess_best_batch(rows: Sequence[InProcessRow]) -> InProcessRow | None:
    closed = [r for r in rows if r.result.offered_per_s is None]
    return max(closed, key=lambda r: r.result.throughput_per_s) if closed else None


def latency_ratio(triton: Sequence[Measurement], rows: Sequence[InProcessRow]) -> Ratio:
    at_one = next((m for m in concurrency_sweep(triton) if m.level.value == 1), None)
    floor = inprocess_batch1_p50_us(rows)
    value = None if at_one is None or floor is None else at_one.p(50) / floor
    return Ratio(
        key="latency_c1",
        title="p50 latency at concurrency 1, Triton ensemble / in-process batch 1",
        value=value,
        target=1.3,
        higher_is_better=False,
        explanation=(
            "what a lone client pays for the server: HTTP or gRPC, the ensemble scheduler and "
            "three model steps against one in-process call"
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


def microservice_ratio(triton: Sequence[Measurement], microservice: Sequence[Measurement]) -> Ratio:
    baseline = saturation(microservice)
    value = None
    if baseline is not None:
        best = triton_best_within_p99(triton, baseline.p(99))
        value = 0.0 if best is None else best.throughput_per_s / baseline.throughput_per_s
    return Ratio(
        key="microservice",
        title=(
            "throughput, Triton at a p99 no worse than the microservice's / the FastAPI "
            "microservice at saturation"
        ),
        value=value,
        target=2.0,
        higher_is_better=True,
        explanation="what the server gives over the service a user would write instead",
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
        latency_ratio(triton, rows),
        throughput_ratio(triton, rows),
        microservice_ratio(triton, microservice),
    ]
