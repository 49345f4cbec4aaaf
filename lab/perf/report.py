"""Turn a results folder into results.csv, breakdown.csv, report.md and two PNG plots.

It reads files only (see `results`), so the same report comes from a local run and from the
Kubernetes Job's perf_analyzer output copied out of the cluster.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI

import matplotlib.pyplot as plt
from inference_tools.perf.perf_analyzer import PERCENTILES, Measurement

from lab.perf import serving_path, serving_path_report
from lab.perf.ratios import (
    Ratio,
    all_ratios,
    concurrency_sweep,
    inprocess_best_batch,
    microservice_ratio_ceiling,
    saturation,
)
from lab.perf.results import (
    MICROSERVICE,
    TRITON,
    InProcessRow,
    inprocess_record,
    measurement_record,
    read_inprocess,
    read_measurements,
    read_run_info,
)

RESULTS_CSV = "results.csv"
BREAKDOWN_CSV = "breakdown.csv"
REPORT_MD = "report.md"
LATENCY_PLOT = "latency_vs_throughput.png"
BREAKDOWN_PLOT = "server_breakdown.png"


@dataclass(frozen=True)
class Report:
    markdown: Path
    results_csv: Path
    breakdown_csv: Path
    plots: tuple[Path, ...]
    ratios: tuple[Ratio, ...]


def _ms(us: float) -> str:
    return f"{us / 1000:.1f}"


def write_results_csv(
    path: Path,
    triton: Sequence[Measurement],
    microservice: Sequence[Measurement],
    inprocess: Sequence[InProcessRow],
    extra_records: Sequence[dict[str, Any]] = (),
) -> None:
    records = [measurement_record(TRITON, m) for m in triton]
    records += [measurement_record(MICROSERVICE, m) for m in microservice]
    records += [inprocess_record(r) for r in inprocess]
    records += extra_records
    if not records:
        raise ValueError("no measurements to report")
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(records[0]))
        writer.writeheader()
        writer.writerows(records)


def write_breakdown_csv(path: Path, triton: Sequence[Measurement]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(
            [
                "mode",
                "distribution",
                "load",
                "model",
                "queue_us",
                "compute_input_us",
                "compute_infer_us",
                "compute_output_us",
            ]
        )
        for m in triton:
            for model, b in sorted(m.composing.items()):
                writer.writerow(
                    [
                        m.level.mode,
                        m.level.distribution if m.level.mode == "request_rate" else "",
                        f"{m.level.value:g}",
                        model,
                        f"{b.queue_us:.0f}",
                        f"{b.compute_input_us:.0f}",
                        f"{b.compute_infer_us:.0f}",
                        f"{b.compute_output_us:.0f}",
                    ]
                )


_PERCENTILE_STYLES = {50: "-", 90: "--", 95: "-.", 99: ":"}


def _plot_percentiles(
    ax: Any,
    sweep: Sequence[Measurement],
    percentiles: Sequence[int],
    marker: str,
    color: str,
    system: str,
) -> None:
    """One system's latency percentiles against its throughput, a line per percentile."""
    for p in percentiles:
        ax.plot(
            [m.throughput_per_s for m in sweep],
            [m.p(p) / 1000 for m in sweep],
            _PERCENTILE_STYLES[p],
            marker=marker,
            color=color,
            label=f"{system} p{p}",
        )


def plot_latency(
    path: Path,
    triton: Sequence[Measurement],
    microservice: Sequence[Measurement],
    inprocess: Sequence[InProcessRow],
) -> None:
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    sweep = concurrency_sweep(triton)
    _plot_percentiles(ax, sweep, PERCENTILES, "o", "tab:green", "Triton")
    for m in sweep:
        ax.annotate(
            f"c{m.level.value:g}",
            (m.throughput_per_s, m.p(50) / 1000),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
            color="tab:green",
        )
    _plot_percentiles(
        ax, concurrency_sweep(microservice), (50, 99), "s", "tab:red", "FastAPI microservice"
    )
    closed = [r for r in inprocess if r.result.offered_per_s is None]
    if closed:
        ax.scatter(
            [r.result.throughput_per_s for r in closed],
            [r.result.p(50) / 1000 for r in closed],
            marker="^",
            color="tab:blue",
            label="in-process p50 (per batch)",
            zorder=3,
        )
        for r in closed:
            ax.annotate(
                f"b{r.result.batch_size}",
                (r.result.throughput_per_s, r.result.p(50) / 1000),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=7,
                color="tab:blue",
            )
    ax.set_xlabel("throughput (texts/s)")
    ax.set_ylabel("latency (ms)")
    ax.set_yscale("log")
    ax.set_title("Latency percentiles against throughput (concurrency sweeps)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_breakdown(path: Path, triton: Sequence[Measurement]) -> None:
    sweep = [m for m in concurrency_sweep(triton) if m.composing]
    models = sorted({model for m in sweep for model in m.composing})
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    width = 0.8 / max(1, len(models))
    colors = plt.get_cmap("tab10")
    for index, model in enumerate(models):
        xs = [i + index * width for i in range(len(sweep))]
        queue = [m.composing[model].queue_us / 1000 if model in m.composing else 0 for m in sweep]
        compute = [
            m.composing[model].compute_us / 1000 if model in m.composing else 0 for m in sweep
        ]
        ax.bar(xs, compute, width, color=colors(index), label=f"{model} compute")
        ax.bar(
            xs,
            queue,
            width,
            bottom=compute,
            color=colors(index),
            alpha=0.4,
            hatch="//",
            label=f"{model} queue",
        )
    ax.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(sweep))])
    ax.set_xticklabels([f"c{m.level.value:g}" for m in sweep])
    ax.set_xlabel("client concurrency")
    ax.set_ylabel("time per request (ms)")
    ax.set_title("Server-side time per composing model: queue and compute")
    ax.legend(fontsize=8, ncol=2)
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _ratio_rows(ratios: Sequence[Ratio]) -> list[list[str]]:
    rows = []
    for r in ratios:
        rows.append([r.title, r.value_text, r.target_text, r.verdict_text])
    return rows


def _ceiling_lines(
    microservice: Sequence[Measurement], inprocess: Sequence[InProcessRow]
) -> list[str]:
    ceiling = microservice_ratio_ceiling(microservice, inprocess)
    if ceiling is None:
        return []
    return [
        f"Ceiling of the microservice ratio on this machine: {ceiling:.2f}x (the in-process "
        "floor's best throughput, one caller per encoder instance or one caller at its best "
        "batch size, over the microservice's; no server outruns the model called with no "
        "serving at all).",
        "",
    ]


def _sweep_rows(sweep: Sequence[Measurement]) -> list[list[str]]:
    rows = []
    for m in sweep:
        load = (
            f"c{m.level.value:g}"
            if m.level.mode == "concurrency"
            else f"{m.level.value:g}/s {m.level.distribution}"
        )
        parts = [
            f"{name} {_ms(b.queue_us)} + {_ms(b.compute_us)}"
            for name, b in sorted(m.composing.items())
        ]
        rows.append(
            [
                load,
                f"{m.throughput_per_s:.1f}",
                *(_ms(m.p(p)) for p in PERCENTILES),
                "; ".join(parts) or "-",
            ]
        )
    return rows


def _offered_rows(
    triton: Sequence[Measurement],
    microservice: Sequence[Measurement],
    inprocess: Sequence[InProcessRow],
) -> list[list[str]]:
    def key(mode_rate: Measurement) -> tuple[str, float]:
        return mode_rate.level.distribution, round(mode_rate.level.value, 3)

    ms = {key(m): m for m in microservice if m.level.mode == "request_rate"}
    floor = {
        (r.role.removeprefix("offered-"), round(r.result.offered_per_s or 0, 3)): r
        for r in inprocess
        if r.result.offered_per_s is not None
    }
    rows = []
    for m in sorted(
        (m for m in triton if m.level.mode == "request_rate"),
        key=lambda m: (m.level.distribution, m.level.value),
    ):
        other = ms.get(key(m))
        base = floor.get(key(m))
        rows.append(
            [
                f"{m.level.value:g}/s {m.level.distribution}",
                f"{_ms(m.p(50))} / {_ms(m.p(99))}",
                "-" if other is None else f"{_ms(other.p(50))} / {_ms(other.p(99))}",
                "-" if base is None else f"{_ms(base.result.p(50))} / {_ms(base.result.p(99))}",
            ]
        )
    return rows


def _run_info_lines(info: dict[str, Any]) -> list[str]:
    labels = {
        "started": "Started",
        "machine": "Machine",
        "triton_url": "Triton",
        "protocol": "Protocol",
        "perf_analyzer": "perf_analyzer",
        "dataset": "Data set",
        "command": "Command",
    }
    lines = []
    for key, label in labels.items():
        if key in info:
            value = info[key]
            lines.append(f"- {label}: `{value}`" if key == "command" else f"- {label}: {value}")
    # Each baseline as it ran: a comparison is only as fair as its baselines' settings.
    lines += [f"- Baseline, {settings}" for settings in info.get("baselines", [])]
    return lines


def render_markdown(
    info: dict[str, Any],
    triton: Sequence[Measurement],
    microservice: Sequence[Measurement],
    inprocess: Sequence[InProcessRow],
    ratios: Sequence[Ratio],
    serving: serving_path.ServingPathResult | None = None,
) -> str:
    parts = [f"# Benchmark: {info.get('model', 'text_embedding')} on Triton", ""]
    parts += _run_info_lines(info)
    parts += [
        "",
        "Absolute numbers depend on the machine and on what else ran on it; the ratios compare "
        "systems measured back to back in this run.",
        "",
        "## Targets",
        "",
        _table(["ratio", "measured", "target", "verdict"], _ratio_rows(ratios)),
        "",
        *_ceiling_lines(microservice, inprocess),
        *serving_path_report.markdown(serving),
    ]
    if not triton:  # the serving-path mode alone
        parts += [f"> {note}\n" for note in info.get("notes", [])]
        return "\n".join(parts).rstrip() + "\n"
    parts += [
        f"![latency against throughput]({LATENCY_PLOT})",
        "",
        "## Throughput at saturation",
        "",
    ]
    sat_rows = [
        [system, f"{best.throughput_per_s:.1f}", f"c{best.level.value:g}", _ms(best.p(99))]
        for system, best in (
            ("Triton ensemble", saturation(triton)),
            ("FastAPI microservice", saturation(microservice)),
        )
        if best is not None
    ]
    floor = inprocess_best_batch(inprocess)
    if floor is not None:
        sat_rows.append(
            [
                "in-process (no server)",
                f"{floor.result.throughput_per_s:.1f}",
                f"batch {floor.result.batch_size}",
                _ms(floor.result.p(99)) + " (per batch)",
            ]
        )
    parts += [_table(["system", "texts/s", "at", "p99 ms"], sat_rows), ""]
    offered = _offered_rows(triton, microservice, inprocess)
    if offered:
        parts += [
            "## Latency at fixed offered loads (p50 / p99, ms)",
            "",
            _table(["offered load", "Triton", "microservice", "in-process"], offered),
            "",
        ]
    closed = [r for r in inprocess if r.result.offered_per_s is None]
    if closed:
        parts += [
            "## In-process floor",
            "",
            "Batches hold texts of one sequence bucket, as Triton's batcher forms them.",
            "",
            _table(
                ["run", "texts/s", "p50 ms", "p99 ms"],
                [
                    [
                        r.result.label + f" ({r.role})",
                        f"{r.result.throughput_per_s:.1f}",
                        _ms(r.result.p(50)),
                        _ms(r.result.p(99)),
                    ]
                    for r in closed
                ],
            ),
            "",
        ]
    header = [
        "load",
        "texts/s",
        *(f"p{p} ms" for p in PERCENTILES),
        "server: queue + compute ms per model",
    ]
    parts += [
        "## Triton sweeps",
        "",
        _table(header, _sweep_rows(triton)),
        "",
        f"![server-side breakdown]({BREAKDOWN_PLOT})",
        "",
    ]
    if microservice:
        parts += [
            "## FastAPI microservice sweeps",
            "",
            _table(header[:-1], [row[:-1] for row in _sweep_rows(microservice)]),
            "",
        ]
    batches = info.get("server_batch_sizes")
    if batches:
        parts += [
            f"## Batches the server formed ({info.get('server_batch_sizes_model', 'minilm')} "
            "executions by batch size)",
            "",
            _table(
                ["batch size", "executions"],
                sorted(([int(k), v] for k, v in batches.items()), key=lambda row: row[0]),
            ),
            "",
        ]
    for note in info.get("notes", []):
        parts += [f"> {note}", ""]
    return "\n".join(parts).rstrip() + "\n"


def write_report(results_dir: Path) -> Report:
    measured = read_measurements(results_dir)
    triton, microservice = measured[TRITON], measured[MICROSERVICE]
    serving = serving_path.read(results_dir)
    if not triton and serving is None:
        raise FileNotFoundError(f"no Triton measurements under {results_dir}/raw")
    inprocess = read_inprocess(results_dir)
    info = read_run_info(results_dir)
    ratios = [
        *(all_ratios(triton, microservice, inprocess) if triton else []),
        *serving_path_report.targets(serving),
    ]
    results_csv = results_dir / RESULTS_CSV
    breakdown_csv = results_dir / BREAKDOWN_CSV
    write_results_csv(
        results_csv, triton, microservice, inprocess, serving_path_report.records(serving)
    )
    write_breakdown_csv(breakdown_csv, triton)
    plots: tuple[Path, ...] = ()
    if triton:
        plots = (results_dir / LATENCY_PLOT, results_dir / BREAKDOWN_PLOT)
        plot_latency(plots[0], triton, microservice, inprocess)
        plot_breakdown(plots[1], triton)
    plots += serving_path_report.write_plot(results_dir, serving)
    markdown = results_dir / REPORT_MD
    markdown.write_text(render_markdown(info, triton, microservice, inprocess, ratios, serving))
    return Report(markdown, results_csv, breakdown_csv, plots, tuple(ratios))
