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
BATCH_ROLE = "batch"  # the throughput floor's sweep over batch sizes
# The served encoder's sessions, one caller per instance, one text per call: the cores' capacity
# with the model run as the server runs it (one caller alone leaves a core idle at one thread).
PARALLEL_ROLE = "served-parallel"
# The latency a client accepts in the microservice comparison.
P99_LIMIT_US = 100_000.0
# Against the microservice a user would write instead: serve at least this much more within
# the latency objective, and answer a lone client at most this much later.
MICROSERVICE_THROUGHPUT_TARGET = 1.2
MICROSERVICE_LATENCY_TARGET_MS = 1.0
# A floor measured twice (before and after Triton's run) whose two runs differ by more than
# this share of the smaller one measured the machine's mood, not the model: no verdict on it.
FLOOR_AGREEMENT = 0.2
# The three verdicts. A target is "met" or "not met" only on a real comparison: a baseline that
# produced nothing, a floor that is not a floor (a negative overhead, a served throughput above
# it, runs that disagree) leaves it "inconclusive", with the reason, never "met".
MET, NOT_MET, INCONCLUSIVE = "met", "not met", "inconclusive"


@dataclass(frozen=True)
class Ratio:
    key: str
    title: str
    value: float | None  # None: a side of it was not measured, or there is nothing to compare
    target: float | None  # None: reported for reading, no target
    higher_is_better: bool
    explanation: str
    unit: str = "x"  # "x" for a ratio, "ms" for a difference
    inconclusive: str | None = None  # why the measurement cannot grade the target
    # The value's range over repeated runs (lowest, highest) where the value is their median.
    spread: tuple[float, float] | None = None

    @property
    def verdict(self) -> str | None:
        """MET, NOT_MET or INCONCLUSIVE; None for a ratio reported for reading (no target)."""
        if self.target is None:
            return None
        if self.reason is not None:
            return INCONCLUSIVE
        assert self.value is not None
        met = self.value >= self.target if self.higher_is_better else self.value <= self.target
        return MET if met else NOT_MET

    @property
    def reason(self) -> str | None:
        """Why the verdict is inconclusive (None: it is not)."""
        if self.inconclusive is not None:
            return self.inconclusive
        if self.value is None:
            return "not measured"
        if not math.isfinite(self.value):
            return f"the value is {self.value}: nothing was compared"
        return None

    @property
    def verdict_text(self) -> str:
        verdict = self.verdict
        if verdict is None:
            return "-"
        if verdict == INCONCLUSIVE:
            return f"inconclusive: {self.reason}"
        return "met" if verdict == MET else "**not met**"

    @property
    def target_text(self) -> str:
        if self.target is None:
            return "-"
        return f"{'≥' if self.higher_is_better else '≤'} {self.target:g}{self._unit_suffix}"

    @property
    def value_text(self) -> str:
        if self.value is None:
            return "not measured" if self.inconclusive is None else "none"
        if self.spread is None:
            return self._number(self.value)
        low, high = (self._number(v, suffix=self.unit == "x") for v in self.spread)
        if self.unit == "x":
            return f"{self._number(self.value)} ({low} to {high})"
        return f"{self._number(self.value, suffix=False)} ({low} to {high}){self._unit_suffix}"

    def _number(self, value: float, *, suffix: bool = True) -> str:
        digits = 2 if self.unit in ("x", "ms") else 0
        return f"{value:.{digits}f}{self._unit_suffix if suffix else ''}"

    @property
    def _unit_suffix(self) -> str:
        return "x" if self.unit == "x" else f" {self.unit}"


def _scaled_range(measurement: Measurement, factor: float) -> tuple[float, float] | None:
    """The range of a median measurement's runs, times `factor` (None: measured once)."""
    runs = measurement.throughput_range
    return None if runs is None else (runs[0] * factor, runs[1] * factor)


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


def floor_disagreement(
    rows: Sequence[InProcessRow], role_prefix: str = BATCH1_ROLE_PREFIX
) -> str | None:
    """Why the batch-1 floor's runs (before and after Triton's c1) cannot be averaged into a
    floor: they differ by more than FLOOR_AGREEMENT. None where they agree (or ran once)."""
    values = [r.result.p(50) for r in rows if r.role.startswith(role_prefix)]
    if len(values) < 2 or min(values) <= 0:
        return None
    spread = max(values) / min(values) - 1
    if spread <= FLOOR_AGREEMENT:
        return None
    runs = " and ".join(f"{v / 1000:.2f} ms" for v in values)
    return (
        f"the floor's runs before and after Triton disagree by {spread:.0%} ({runs} p50; "
        f"at most {FLOOR_AGREEMENT:.0%} allowed)"
    )


def floor_not_rising(rows: Sequence[InProcessRow]) -> str | None:
    """Why the in-process batch sweep is no throughput floor: a larger batch ran slower than a
    smaller one by more than FLOOR_AGREEMENT (batching that loses means a disturbed run, or a
    pipeline that does not batch). None where throughput rises, within that tolerance."""
    sweep = sorted(
        (r.result for r in rows if r.role == BATCH_ROLE and r.result.offered_per_s is None),
        key=lambda result: result.batch_size,
    )
    best_so_far = None
    for result in sweep:
        if best_so_far is not None and result.throughput_per_s < best_so_far.throughput_per_s * (
            1 - FLOOR_AGREEMENT
        ):
            return (
                f"floor failure: in-process batch {result.batch_size} ran at "
                f"{result.throughput_per_s:.0f} texts/s, below batch {best_so_far.batch_size}'s "
                f"{best_so_far.throughput_per_s:.0f}: throughput does not rise with batch size"
            )
        if best_so_far is None or result.throughput_per_s > best_so_far.throughput_per_s:
            best_so_far = result
    return None


def inprocess_best_batch(rows: Sequence[InProcessRow]) -> InProcessRow | None:
    closed = [r for r in rows if r.result.offered_per_s is None]
    return max(closed, key=lambda r: r.result.throughput_per_s) if closed else None


def _c1_p50_us(triton: Sequence[Measurement]) -> float | None:
    at_one = next((m for m in concurrency_sweep(triton) if m.level.value == 1), None)
    return None if at_one is None else at_one.p(50)


def latency_overhead(triton: Sequence[Measurement], rows: Sequence[InProcessRow]) -> Ratio:
    served = _c1_p50_us(triton)
    floor = inprocess_batch1_p50_us(rows, SERVED_THREADS_ROLE_PREFIX)
    value = None if served is None or floor is None else (served - floor) / 1000.0
    inconclusive = floor_disagreement(rows, SERVED_THREADS_ROLE_PREFIX)
    if inconclusive is None and value is not None and value < 0:
        inconclusive = (
            "negative overhead: Triton answered faster than the in-process floor, which is then "
            "no floor"
        )
    return Ratio(
        inconclusive=inconclusive,
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
    served = _c1_p50_us(triton)
    floor = inprocess_batch1_p50_us(rows)
    value = None if served is None or floor is None else served / floor
    return Ratio(
        inconclusive=floor_disagreement(rows),
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
        if best_triton is None or best_floor is None or best_floor.result.throughput_per_s <= 0
        else best_triton.throughput_per_s / best_floor.result.throughput_per_s
    )
    # The same floor measured twice (batch 1, before and after Triton's c1) and disagreeing
    # says the machine moved under the run: its best batch is no steadier.
    inconclusive = floor_not_rising(rows) or floor_disagreement(rows)
    if inconclusive is None and value is not None and value > 1:
        assert best_triton is not None and best_floor is not None
        inconclusive = (
            f"floor failure: Triton served {best_triton.throughput_per_s:.0f} texts/s, above the "
            f"in-process floor's {best_floor.result.throughput_per_s:.0f} (batch "
            f"{best_floor.result.batch_size}): the floor is not the hardware's capacity"
        )
    spread = None
    if best_triton is not None and best_floor is not None and value is not None:
        spread = _scaled_range(best_triton, 1 / best_floor.result.throughput_per_s)
    return Ratio(
        inconclusive=inconclusive,
        spread=spread,
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
    value, inconclusive, spread = None, None, None
    if theirs is not None and theirs.throughput_per_s > 0:
        value = 0.0 if ours is None else ours.throughput_per_s / theirs.throughput_per_s
        if ours is not None:
            # The extremes the runs allow: our slowest over their fastest, and the reverse.
            ours_low, ours_high = ours.throughput_range or (ours.throughput_per_s,) * 2
            theirs_low, theirs_high = theirs.throughput_range or (theirs.throughput_per_s,) * 2
            if (ours.throughput_range or theirs.throughput_range) and theirs_low > 0:
                spread = (ours_low / theirs_high, ours_high / theirs_low)
    elif not microservice:
        inconclusive = "no comparison: the microservice was not measured"
    else:
        # Any multiple of nothing is no multiple: the baseline must serve within the bound.
        inconclusive = (
            f"no comparison: the microservice served nothing with p99 ≤ "
            f"{P99_LIMIT_US / 1000:g} ms at any level"
        )
    return Ratio(
        inconclusive=inconclusive,
        spread=spread,
        key="microservice",
        title=(
            f"highest throughput with p99 ≤ {P99_LIMIT_US / 1000:g} ms, Triton / the FastAPI "
            "microservice"
        ),
        value=value,
        target=MICROSERVICE_THROUGHPUT_TARGET,
        higher_is_better=True,
        explanation=(
            "what the server gives over the service a user would write instead, each at the "
            "most it sustains within the same latency objective"
        ),
    )


def microservice_latency(
    triton: Sequence[Measurement], microservice: Sequence[Measurement]
) -> Ratio:
    ours, theirs = _c1_p50_us(triton), _c1_p50_us(microservice)
    value = None if ours is None or theirs is None else (ours - theirs) / 1000.0
    return Ratio(
        key="microservice_latency_c1",
        title="p50 at concurrency 1, Triton minus the FastAPI microservice",
        value=value,
        target=MICROSERVICE_LATENCY_TARGET_MS,
        higher_is_better=False,
        explanation=(
            "what a lone client pays for Triton over the service a user would write instead "
            "(negative: Triton answers sooner)"
        ),
        unit="ms",
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
        microservice_latency(triton, microservice),
    ]
