"""The serving-path part of the report: targets per CPU core, a table and a plot."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt
from inference_tools.perf.perf_analyzer import Measurement

from lab.perf.ratios import Ratio
from lab.perf.results import measurement_record
from lab.perf.serving_path import (
    PROTOCOLS,
    TARGET_PER_CORE,
    TARGET_PROTOCOL,
    TEXT_KINDS,
    ServingPathResult,
)

PLOT = "serving_path.png"
UNIT = "texts/s per core"


def system_name(protocol: str, texts_per_request: int) -> str:
    return f"serving-path {protocol} {texts_per_request} texts"


def targets(result: ServingPathResult | None) -> list[Ratio]:
    """Texts/s per CPU core at saturation: the targets over gRPC, HTTP for reading."""
    if result is None:
        return []
    ratios = []
    for texts, target in TARGET_PER_CORE.items():
        for protocol in PROTOCOLS:
            graded = protocol == TARGET_PROTOCOL
            ratios.append(
                Ratio(
                    key=f"serving_path_{protocol}_{texts}",
                    title=(
                        f"serving path alone, {texts}-text requests over {protocol}: "
                        f"texts/s per CPU core at saturation ({result.cpus:g} cores)"
                    ),
                    value=result.per_core(protocol, texts),
                    target=target if graded else None,
                    higher_is_better=True,
                    explanation="what serving costs apart from the model",
                    unit=UNIT,
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
        "| protocol | texts per request | concurrency | texts/s | texts/s per core "
        "| p50 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for p in sorted(result.points, key=lambda p: (p.protocol, p.texts_per_request, p.concurrency)):
        m = p.measurement
        rows.append(
            f"| {p.protocol} | {p.texts_per_request} | {p.concurrency} "
            f"| {m.throughput_per_s:.0f} | {m.throughput_per_s / result.cpus:.0f} "
            f"| {_ms(m.p(50))} | {_ms(m.p(99))} |"
        )
    return [
        "## Serving path alone (encoder swapped for a lookup graph)",
        "",
        "The same repository with `minilm` replaced by an embedding lookup with the same inputs, "
        "outputs and pooling head (`bert_onnx.build_lookup_encoder_model`): what the protocol, "
        "the ensemble, the tokenizer and the process hops cost without the model. "
        f"Texts: {', '.join(TEXT_KINDS)} kinds of the data set; perf_analyzer with binary "
        f"tensors; {result.cpus:g} CPU cores shared by the server, its model processes and "
        "perf_analyzer.",
        "",
        *rows,
        "",
        f"![serving path]({PLOT})",
        "",
    ]


def plot(path: Path, result: ServingPathResult) -> None:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    series: dict[tuple[str, int], list[Measurement]] = {}
    for p in result.points:
        series.setdefault((p.protocol, p.texts_per_request), []).append(p.measurement)
    for (protocol, texts), measurements in sorted(series.items()):
        sweep = sorted(measurements, key=lambda m: m.level.value)
        ax.plot(
            [m.throughput_per_s / result.cpus for m in sweep],
            [m.p(99) / 1000 for m in sweep],
            "-" if protocol == "grpc" else "--",
            marker="o" if texts == 1 else "s",
            label=f"{protocol}, {texts} text{'s' if texts > 1 else ''} per request (p99)",
        )
        for m in sweep:
            ax.annotate(
                f"c{m.level.value:g}",
                (m.throughput_per_s / result.cpus, m.p(99) / 1000),
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
