"""The serving-path part of the report: targets per CPU core, a table and a plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt

from lab.perf.ratios import Ratio
from lab.perf.results import measurement_record
from lab.perf.serving_path import (
    P99_BOUND_US,
    PROTOCOLS,
    TARGET_PER_CORE,
    TARGET_PROTOCOL,
    TEXT_KINDS,
    TEXTS_PER_REQUEST,
    ServingPathResult,
)

PLOT = "serving_path.png"
UNIT = "texts/s per core"


def system_name(protocol: str, texts_per_request: int) -> str:
    return f"serving-path {protocol} {texts_per_request} texts"


def _inconclusive(result: ServingPathResult, protocol: str, texts: int) -> str | None:
    levels = result.levels(protocol, texts)
    if not levels:
        return "not measured"
    if result.graded(protocol, texts) is None:
        best = min(level.p99_us for level in levels)
        return (
            f"no level kept p99 ≤ {P99_BOUND_US / 1000:g} ms (the lowest median p99 was "
            f"{best / 1000:.0f} ms)"
        )
    return None


def targets(result: ServingPathResult | None) -> list[Ratio]:
    """Texts/s per CPU core at the most each sustains within p99 ≤ 100 ms, medians of the
    repeated runs: the targets over gRPC, HTTP for reading."""
    if result is None:
        return []
    ratios = []
    for texts, target in TARGET_PER_CORE.items():
        for protocol in PROTOCOLS:
            graded = protocol == TARGET_PROTOCOL
            level = result.graded(protocol, texts)
            runs = len(level.runs) if level is not None else 0
            ratios.append(
                Ratio(
                    key=f"serving_path_{protocol}_{texts}",
                    title=(
                        f"serving path alone, {texts}-text requests over {protocol}: "
                        f"texts/s per CPU core, the most with p99 ≤ {P99_BOUND_US / 1000:g} ms "
                        f"({result.cpus:g} cores, median of {runs} runs)"
                    ),
                    value=result.per_core(protocol, texts),
                    target=target if graded else None,
                    higher_is_better=True,
                    explanation="what serving costs apart from the model",
                    unit=UNIT,
                    inconclusive=_inconclusive(result, protocol, texts),
                    spread=result.per_core_range(protocol, texts),
                )
            )
    return ratios


def records(result: ServingPathResult | None) -> list[dict[str, object]]:
    """results.csv rows, one per measured level."""
    if result is None:
        return []
    return [
        measurement_record(system_name(p.protocol, p.texts_per_request), p.measurement)
        for p in result.points
    ]


def _ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def markdown(result: ServingPathResult | None) -> list[str]:
    if result is None:
        return []
    rows = [
        "| protocol | texts per request | concurrency | runs | texts/s (median, range) "
        "| texts/s per core | p50 ms | p99 ms | graded |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for protocol in PROTOCOLS:
        for texts in TEXTS_PER_REQUEST:
            graded = result.graded(protocol, texts)
            for level in result.levels(protocol, texts):
                low, high = level.throughput_range
                p50 = sorted(m.p(50) for m in level.runs)[len(level.runs) // 2]
                rows.append(
                    f"| {protocol} | {texts} | {level.concurrency} | {len(level.runs)} "
                    f"| {level.throughput_per_s:.0f} ({low:.0f} to {high:.0f}) "
                    f"| {level.throughput_per_s / result.cpus:.0f} | {_ms(p50)} "
                    f"| {_ms(level.p99_us)} | {'yes' if graded == level else ''} |"
                )
    return [
        "## Serving path alone (encoder swapped for a lookup graph)",
        "",
        "The same repository with `minilm` replaced by an embedding lookup with the same inputs, "
        "outputs and pooling head (`bert_onnx.build_lookup_encoder_model`): what the protocol, "
        "the ensemble, the tokenizer and the process hops cost without the model. "
        f"Texts: every kind of the data set ({', '.join(TEXT_KINDS)}), in its fixed shares; "
        f"perf_analyzer with binary tensors; {result.cpus:g} CPU cores shared by the server, its "
        "model processes and perf_analyzer. Each level runs several times and counts by its "
        f"medians; the graded level is the fastest whose median p99 is within "
        f"{P99_BOUND_US / 1000:g} ms. The tokenizer's sequence buckets were chosen on this data "
        "set: read these figures as measured in-sample.",
        "",
        *rows,
        "",
        f"![serving path]({PLOT})",
        "",
    ]


def plot(path: Path, result: ServingPathResult) -> None:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    for protocol in PROTOCOLS:
        for texts in TEXTS_PER_REQUEST:
            sweep = result.levels(protocol, texts)
            if not sweep:
                continue
            ax.plot(
                [level.throughput_per_s / result.cpus for level in sweep],
                [level.p99_us / 1000 for level in sweep],
                "-" if protocol == "grpc" else "--",
                marker="o" if texts == 1 else "s",
                label=f"{protocol}, {texts} text{'s' if texts > 1 else ''} per request "
                "(median p99)",
            )
            for level in sweep:
                ax.annotate(
                    f"c{level.concurrency}",
                    (level.throughput_per_s / result.cpus, level.p99_us / 1000),
                    fontsize=7,
                    xytext=(3, 3),
                    textcoords="offset points",
                )
    for texts, target in TARGET_PER_CORE.items():
        ax.axvline(target, color="grey", linewidth=0.8, linestyle=":")
        ax.annotate(
            f"target, {texts}-text requests",
            (target, 0),
            fontsize=7,
            rotation=90,
            xytext=(2, 4),
            textcoords="offset points",
        )
    ax.set_xscale("log")
    ax.set_xlabel(f"throughput ({UNIT})")
    ax.set_ylabel("p99 latency (ms)")
    ax.set_title("Serving path alone: lookup encoder, concurrency sweep")
    ax.legend(fontsize=8)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_plot(results_dir: Path, result: ServingPathResult | None) -> tuple[Path, ...]:
    if result is None or not result.points:
        return ()
    path = results_dir / PLOT
    plot(path, result)
    return (path,)
