"""Where the time goes: Triton and the FastAPI microservice under the same load, each run
profiled, beside the model called in-process with no server at all.

For every case (a system, a protocol, a concurrency) perf_analyzer drives the load with the
benchmark's data set while `perf record` samples the cores (cpu_profile.py). Each process's CPU
time over the texts served in the window gives CPU milliseconds per text, by process (the Triton
server, each backend stub, the microservice, the load generator) and by what the process was
executing (ONNX Runtime, the Python interpreter, Triton's core, the kernel, ...). Triton's own
statistics, as perf_analyzer reports them, split each request's server time into queue, input,
inference and output per model. The floor runs the served encoder's sessions in this process,
one caller per instance, one text per call: no protocol, no scheduler, no process hop.

On two cores CPU per text is throughput: whatever a system spends per text beyond the model's
own cost is taken from the model's share of the same cores, so this table says what a server
would have to stop spending to serve more than another.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TypeVar

import matplotlib

matplotlib.use("Agg")  # files only: no display on servers and in CI
import matplotlib.pyplot as plt
from inference_tools.local_server import LocalTritonServer
from inference_tools.perf import dataset
from inference_tools.perf.measured_model import choose_measured_model
from inference_tools.perf.perf_analyzer import (
    LoadLevel,
    Measurement,
    PerfAnalyzerSettings,
    run_level,
)

from lab import process_tree
from lab.perf import cpu_profile, inprocess
from lab.perf.inprocess_baseline import EmbeddingPipeline, served_pipelines
from lab.perf.microservice import MODEL_NAME, MicroserviceProcess

FLOOR = "in-process"
TRITON = "triton"
MICROSERVICE = "microservice"
THIS_PROCESS = "in-process pipeline"
# perf_analyzer with the stability check off: three windows, then it stops. The profile is
# recorded inside them, after the first window's start so that the load is already running.
WINDOWS = 3
PROFILE_DELAY_S = 2.0
PLOT_NAME = "cpu_per_text.png"
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    out_dir: Path
    model_repository: Path
    concurrency: tuple[int, ...] = (1, 8)
    protocols: tuple[str, ...] = ("grpc", "http")
    window_ms: int = 4000
    repeats: int = 3
    dataset_size: int = dataset.DEFAULT_SIZE
    command: str = ""


@dataclass(frozen=True)
class Case:
    system: str  # FLOOR, TRITON or MICROSERVICE
    protocol: str  # "-" for the floor
    concurrency: int  # callers for the floor

    @property
    def title(self) -> str:
        if self.system == FLOOR:
            return f"in-process, {self.concurrency} callers"
        return f"{self.system} {self.protocol} c{self.concurrency}"


@dataclass(frozen=True)
class CaseRun:
    case: Case
    run: int
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    # CPU ms per text by process label, and by (process label, category).
    cpu_ms_per_text: dict[str, float]
    cpu_ms_per_text_by_category: dict[str, dict[str, float]]
    idle_cores: float
    other_cores: float
    # Triton only: per model, the server's average µs per request in each stage.
    stages_us: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def total_cpu_ms_per_text(self) -> float:
        return sum(self.cpu_ms_per_text.values())


def _labels() -> dict[int, str]:
    """Every process this run started, by label; this process is the in-process pipeline."""
    own = os.getpid()
    return {
        pid: THIS_PROCESS if pid == own else process_tree.process_label(pid)
        for pid in process_tree.descendants(own)
    }


def profiled(
    run: Callable[[], T], data_path: Path, window_s: float
) -> tuple[T, cpu_profile.CpuProfile]:
    """Run `run` while the cores are sampled for `window_s`, starting PROFILE_DELAY_S in."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(run)
        time.sleep(PROFILE_DELAY_S)
        labels = _labels()
        cpu_profile.record(data_path, window_s)
        value = running.result()
    lines = cpu_profile.script_lines(data_path)
    profile = cpu_profile.summarise(lines, labels, os.cpu_count() or 1)
    data_path.unlink(missing_ok=True)  # megabytes of samples, summarised below
    return value, profile


def _per_text(
    case: Case,
    run: int,
    profile: cpu_profile.CpuProfile,
    result: Measurement | inprocess.InProcessResult,
    stages_us: dict[str, dict[str, float]],
) -> CaseRun:
    """`result`: what the load measured (texts/s, latency percentiles in µs), either system."""
    texts_per_s = result.throughput_per_s
    texts = max(texts_per_s * profile.window_s, 1e-9)
    by_label = {label: profile.cpu_s(label) * 1000 / texts for label in profile.labels}
    by_category = {
        label: {
            cat: profile.cpu_s(label, cat) * 1000 / texts
            for cat in profile.categories
            if profile.cpu_s(label, cat) > 0
        }
        for label in profile.labels
    }
    return CaseRun(
        case=case,
        run=run,
        texts_per_s=texts_per_s,
        p50_ms=result.p(50) / 1000,
        p99_ms=result.p(99) / 1000,
        cpu_ms_per_text=by_label,
        cpu_ms_per_text_by_category=by_category,
        idle_cores=profile.idle_s / profile.window_s,
        other_cores=profile.others_s / profile.window_s,
        stages_us=stages_us,
    )


def _stages(measurement: Measurement) -> dict[str, dict[str, float]]:
    stages: dict[str, dict[str, float]] = {}
    for model, breakdown in sorted(measurement.composing.items()):
        stages[model] = {
            "queue": breakdown.queue_us,
            "compute input": breakdown.compute_input_us,
            "compute infer": breakdown.compute_infer_us,
            "compute output": breakdown.compute_output_us,
        }
    if measurement.server is not None:
        stages["whole request"] = {
            "server send/receive and scheduling": measurement.server.other_us,
        }
    return stages


class WhereTimeGoes:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.raw = options.out_dir / "raw"
        self.texts = dataset.generate_texts(options.dataset_size)
        self.runs: list[CaseRun] = []

    def window_s(self) -> float:
        """The profile's window: inside perf_analyzer's windows, ending before the last does."""
        return max(1.0, WINDOWS * self.options.window_ms / 1000 - PROFILE_DELAY_S - 1.0)

    def _load(self, settings: PerfAnalyzerSettings, case: Case, run: int) -> CaseRun:
        level = LoadLevel("concurrency", case.concurrency)
        name = f"{case.system}-{case.protocol}-c{case.concurrency}-run{run}"
        measurement, profile = profiled(
            lambda: run_level(settings, level, self.raw, name),
            self.raw / f"{name}.perf.data",
            self.window_s(),
        )
        return _per_text(case, run, profile, measurement, _stages(measurement))

    def _floor(self, pipelines: Sequence[EmbeddingPipeline], run: int) -> CaseRun:
        case = Case(FLOOR, "-", len(pipelines))
        texts = [t.text for t in self.texts]
        duration = self.window_s() + PROFILE_DELAY_S + 1.0
        result, profile = profiled(
            lambda: inprocess.parallel_closed_loop(pipelines, texts, duration),
            self.raw / f"floor-run{run}.perf.data",
            self.window_s(),
        )
        return _per_text(case, run, profile, result, {})

    def cases(self) -> int:
        o = self.options
        return o.repeats * (1 + len(o.concurrency) * (len(o.protocols) + 1))

    def run(self, step: Callable[[str], contextlib.AbstractContextManager[None]]) -> Path:
        o = self.options
        cpu_profile.perf_binary()  # fail before starting anything
        self.raw.mkdir(parents=True, exist_ok=True)
        measured = choose_measured_model(
            o.model_repository, None, self.raw / "input_data.json", self.texts
        )
        openai_data = dataset.write_json(
            dataset.openai_input_data(self.texts, MODEL_NAME), self.raw / "openai_input_data.json"
        )
        # Stability off: a fixed number of windows, so that every case runs as long.
        base = PerfAnalyzerSettings(
            model=measured.model,
            url="",
            input_data=measured.input_data,
            measurement_interval_ms=o.window_ms,
            stability_percentage=1000.0,
            max_trials=WINDOWS,
        )
        with self._systems() as (server, service):
            settings = {
                (TRITON, "grpc"): replace(base, url=server.grpc_url, protocol="grpc"),
                (TRITON, "http"): replace(base, url=server.http_url, protocol="http"),
                (MICROSERVICE, "http"): service.perf_settings(base, openai_data),
            }
            pipelines = served_pipelines(o.model_repository)
            # Repeats outermost and systems innermost: whatever the machine does at a moment
            # weighs on every system alike.
            for run in range(1, o.repeats + 1):
                with step(f"in-process floor, run {run}"):
                    self.runs.append(self._floor(pipelines, run))
                for concurrency in o.concurrency:
                    for system, protocol in [
                        *((TRITON, p) for p in o.protocols),
                        (MICROSERVICE, "http"),
                    ]:
                        case = Case(system, protocol, concurrency)
                        with step(f"{case.title}, run {run}"):
                            self.runs.append(self._load(settings[(system, protocol)], case, run))
        return self.write()

    @contextlib.contextmanager
    def _systems(self) -> Iterator[tuple[LocalTritonServer, MicroserviceProcess]]:
        o = self.options
        server = LocalTritonServer(o.model_repository.resolve())
        server.start()
        try:
            with MicroserviceProcess(o.model_repository, self.raw / "microservice.log") as ms:
                yield server, ms
        finally:
            server.stop()

    def write(self) -> Path:
        o = self.options
        (o.out_dir / "runs.json").write_text(
            json.dumps([asdict(r) for r in self.runs], indent=1) + "\n"
        )
        write_csv(o.out_dir / "cpu_per_text.csv", self.runs)
        plot_cpu_per_text(o.out_dir / PLOT_NAME, self.runs, o.concurrency)
        report = o.out_dir / "report.md"
        report.write_text(render(self.runs, o, self.window_s()))
        return report


def write_csv(path: Path, runs: Sequence[CaseRun]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["case", "run", "texts_per_s", "process", "category", "cpu_ms_per_text"])
        for r in runs:
            for label, categories in r.cpu_ms_per_text_by_category.items():
                for cat, value in categories.items():
                    writer.writerow(
                        [r.case.title, r.run, f"{r.texts_per_s:.2f}", label, cat, f"{value:.3f}"]
                    )


# -- the report -------------------------------------------------------------------------------


def _median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def _cell(values: Sequence[float], digits: int = 2) -> str:
    """The median of the runs, with their range where there are several."""
    if not values:
        return "-"
    median = f"{_median(values):.{digits}f}"
    if len(values) < 2:
        return median
    return f"{median} ({min(values):.{digits}f} to {max(values):.{digits}f})"


def _by_case(runs: Sequence[CaseRun]) -> dict[Case, list[CaseRun]]:
    grouped: dict[Case, list[CaseRun]] = {}
    for r in runs:
        grouped.setdefault(r.case, []).append(r)
    return grouped


def _cpu_table(cases: dict[Case, list[CaseRun]], columns: Sequence[Case]) -> list[str]:
    def heaviest(label: str) -> float:
        return max(_median([r.cpu_ms_per_text.get(label, 0.0) for r in cases[c]]) for c in columns)

    labels = sorted(
        {label for c in columns for r in cases[c] for label in r.cpu_ms_per_text},
        key=lambda label: -heaviest(label),
    )
    categories = sorted(
        {
            cat
            for c in columns
            for r in cases[c]
            for per_label in r.cpu_ms_per_text_by_category.values()
            for cat in per_label
        }
    )

    def category_total(r: CaseRun, cat: str) -> float:
        return sum(per.get(cat, 0.0) for per in r.cpu_ms_per_text_by_category.values())

    lines = [
        "| | " + " | ".join(c.title for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]

    def row(title: str, value: Callable[[CaseRun], float], digits: int = 2) -> None:
        cells = [_cell([value(r) for r in cases[c]], digits) for c in columns]
        lines.append(f"| {title} | " + " | ".join(cells) + " |")

    row("texts/s", lambda r: r.texts_per_s, 1)
    row("p50 ms", lambda r: r.p50_ms, 1)
    row("p99 ms", lambda r: r.p99_ms, 1)
    row("**CPU ms per text, all our processes**", lambda r: r.total_cpu_ms_per_text)
    for label in labels:
        row(f"by process: {label}", lambda r, label=label: r.cpu_ms_per_text.get(label, 0.0))
    for cat in categories:
        row(f"by what ran: {cat}", lambda r, cat=cat: category_total(r, cat))
    row("cores idle", lambda r: r.idle_cores)
    row("cores taken by other processes", lambda r: r.other_cores)
    return lines


def _stage_table(cases: dict[Case, list[CaseRun]], columns: Sequence[Case]) -> list[str]:
    keys = sorted(
        (model, stage)
        for model, stage in {
            (model, stage)
            for c in columns
            for r in cases[c]
            for model, per_stage in r.stages_us.items()
            for stage in per_stage
        }
    )
    if not keys:
        return []
    lines = [
        "| model: stage (µs per request) | " + " | ".join(c.title for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for model, stage in keys:
        cells = [
            _cell([r.stages_us.get(model, {}).get(stage, 0.0) for r in cases[c]], 0)
            for c in columns
        ]
        lines.append(f"| {model}: {stage} | " + " | ".join(cells) + " |")
    return lines


def _columns(cases: dict[Case, list[CaseRun]], concurrency: int) -> list[Case]:
    """The floor first, then every system at this concurrency."""
    floors = [c for c in cases if c.system == FLOOR]
    at_level = [c for c in cases if c.concurrency == concurrency and c.system != FLOOR]
    return [*floors, *sorted(at_level, key=lambda c: (c.system, c.protocol))]


def plot_cpu_per_text(path: Path, runs: Sequence[CaseRun], levels: Sequence[int]) -> None:
    """Stacked bars: each case's median CPU ms per text, split by process, one panel a level."""
    cases = _by_case(runs)
    labels = sorted({label for r in runs for label in r.cpu_ms_per_text})
    colours = {label: plt.get_cmap("tab10")(i % 10) for i, label in enumerate(labels)}
    fig, axes = plt.subplots(1, len(levels), figsize=(5 * len(levels) + 2, 4.5), dpi=110)
    axes = list(axes) if len(levels) > 1 else [axes]
    for ax, concurrency in zip(axes, levels, strict=True):
        columns = _columns(cases, concurrency)
        bottoms = [0.0] * len(columns)
        for label in labels:
            heights = [
                _median([r.cpu_ms_per_text.get(label, 0.0) for r in cases[c]]) for c in columns
            ]
            if not any(heights):
                continue
            ax.bar(
                [c.title for c in columns],
                heights,
                bottom=bottoms,
                color=colours[label],
                label=label,
            )
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        for x, (case, total) in enumerate(zip(columns, bottoms, strict=True)):
            texts_per_s = _median([r.texts_per_s for r in cases[case]])
            ax.annotate(f"{texts_per_s:.0f}/s", (x, total), ha="center", va="bottom", fontsize=8)
        ax.set_title(f"concurrency {concurrency} (bar labels: texts/s)")
        ax.set_ylabel("CPU ms per text (median of runs)")
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
        ax.grid(True, axis="y", alpha=0.3)
    handles, names = axes[-1].get_legend_handles_labels()
    fig.legend(handles, names, loc="center right", fontsize=8)
    fig.suptitle("Where the CPU goes, per text served")
    fig.tight_layout(rect=(0, 0, 0.83, 1))
    fig.savefig(path)
    plt.close(fig)


def render(runs: Sequence[CaseRun], options: Options, window_s: float) -> str:
    cases = _by_case(runs)
    lines = [
        "# Where the time goes: Triton, the FastAPI microservice and the model alone",
        "",
        f"- Started: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}; machine: {os.cpu_count()} cores",
        f"- Command: `{options.command}`" if options.command else "",
        f"- Each case: perf_analyzer, {WINDOWS} windows of {options.window_ms} ms, the "
        f"benchmark's data set ({options.dataset_size} texts, one per request); `perf record` "
        f"samples every core at {cpu_profile.FREQUENCY_HZ} Hz for {window_s:g} s inside them. "
        f"{options.repeats} runs of every case, interleaved; cells are the median (range).",
        "- CPU ms per text: a process's CPU time in the window over the texts served in it. "
        "The load generator (perf_analyzer) runs on the same cores, and counts.",
        "",
        f"![CPU per text]({PLOT_NAME})",
        "",
    ]
    for concurrency in options.concurrency:
        columns = _columns(cases, concurrency)
        lines += [f"## Concurrency {concurrency}", "", *_cpu_table(cases, columns), ""]
        stage_columns = [c for c in columns if c.system == TRITON]
        stage_lines = _stage_table(cases, stage_columns)
        if stage_lines:
            lines += ["Triton's statistics per model and stage:", "", *stage_lines, ""]
    return "\n".join(line for line in lines if line is not None) + "\n"
