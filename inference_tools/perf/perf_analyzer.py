"""Run Triton's perf_analyzer at one load level and read back its CSV report.

Usable on its own (stepped load, calibration): `PerfAnalyzerSettings` says what to measure and
how, `LoadLevel` how much load, `run_level()` runs the 2.51 binary and returns a `Measurement`.

Facts about the 2.51 binary that shape this module:
- `-f NAME` writes the ensemble's rows to NAME and one `<model>_v<version>.NAME` per composing
  model, the prefix glued to the *path* given: so it runs in the output folder with a bare name.
- Rows are sorted by throughput, not by load; columns depend on the flags and on the service
  kind (no server columns for `--service-kind openai`), so columns are read by name.
- A level whose windows never agree within `--stability-percentage` fails the whole run with
  "Failed to obtain stable measurement" and writes no CSV.
- `--collect-metrics` adds GPU columns that stay empty on a CPU-only server.
"""

from __future__ import annotations

import csv
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from inference_tools.triton_runtime import perf_analyzer_env, perf_analyzer_path

PERCENTILES = (50, 90, 95, 99)
OUTPUT_TAIL_LINES = 30


class PerfAnalyzerError(RuntimeError):
    pass


@dataclass(frozen=True)
class LoadLevel:
    """A closed loop of `value` requests in flight, or an open loop of `value` requests/s."""

    mode: str  # "concurrency" or "request_rate"
    value: float
    distribution: str = "constant"  # for request_rate: "constant" or "poisson"

    def __post_init__(self) -> None:
        if self.mode not in ("concurrency", "request_rate"):
            raise ValueError(f"unknown load mode {self.mode!r}")
        if self.distribution not in ("constant", "poisson"):
            raise ValueError(f"unknown request distribution {self.distribution!r}")
        if self.value <= 0:
            raise ValueError(f"load must be positive, got {self.value}")

    @property
    def label(self) -> str:
        if self.mode == "concurrency":
            return f"concurrency {self.value:g}"
        return f"{self.value:g} req/s {self.distribution}"

    @property
    def slug(self) -> str:
        if self.mode == "concurrency":
            return f"concurrency-{self.value:g}"
        return f"rate-{self.distribution}-{self.value:g}"

    def flags(self) -> list[str]:
        if self.mode == "concurrency":
            return [f"--concurrency-range={int(self.value)}"]
        return [
            f"--request-rate-range={self.value:g}",
            f"--request-distribution={self.distribution}",
        ]


@dataclass(frozen=True)
class PerfAnalyzerSettings:
    model: str
    url: str
    protocol: str = "http"
    input_data: Path | None = None
    measurement_interval_ms: int = 4000
    # Set to measure in windows of at least this many requests instead of fixed time windows:
    # a time window in which a slow request completes nothing cannot be compared.
    measurement_request_count: int | None = None
    stability_percentage: float = 30.0
    max_trials: int = 6
    service_kind: str = "triton"
    endpoint: str | None = None  # for service_kind "openai", e.g. "v1/embeddings"
    verbose_csv: bool = True
    metrics_url: str | None = None  # set to add --collect-metrics (Triton only)
    extra_args: tuple[str, ...] = ()

    def command(self, level: LoadLevel, csv_name: str) -> list[str]:
        command = [
            str(perf_analyzer_path()),
            "-m",
            self.model,
            "-u",
            self.url,
            "-i",
            self.protocol,
            *(
                [
                    "--measurement-mode=count_windows",
                    f"--measurement-request-count={self.measurement_request_count}",
                ]
                if self.measurement_request_count
                else [f"--measurement-interval={self.measurement_interval_ms}"]
            ),
            f"--stability-percentage={self.stability_percentage:g}",
            f"--max-trials={self.max_trials}",
            "-f",
            csv_name,
            *level.flags(),
        ]
        if self.service_kind != "triton":
            command += [f"--service-kind={self.service_kind}"]
        if self.endpoint:
            command += [f"--endpoint={self.endpoint}"]
        if self.input_data is not None:
            command += [f"--input-data={self.input_data}"]
        if self.verbose_csv:
            command += ["--verbose-csv"]
        if self.metrics_url and self.service_kind == "triton":
            command += ["--collect-metrics", f"--metrics-url={self.metrics_url}"]
        return [*command, *self.extra_args]


@dataclass(frozen=True)
class ServerBreakdown:
    """Average server-side time per request, as perf_analyzer derives it from Triton's stats."""

    queue_us: float
    compute_input_us: float
    compute_infer_us: float
    compute_output_us: float
    other_us: float  # "Network+Server Send/Recv": latency not accounted for by the rest

    @property
    def compute_us(self) -> float:
        return self.compute_input_us + self.compute_infer_us + self.compute_output_us


@dataclass(frozen=True)
class Measurement:
    level: LoadLevel
    throughput_per_s: float
    latency_us: Mapping[int, float]  # percentile -> client-side latency
    avg_latency_us: float | None
    server: ServerBreakdown | None
    composing: Mapping[str, ServerBreakdown] = field(default_factory=dict)
    composing_throughput_per_s: Mapping[str, float] = field(default_factory=dict)
    extra: Mapping[str, str] = field(default_factory=dict)
    # Where this is the median of repeated runs (results.median_of_runs): each run's throughput.
    run_throughputs_per_s: tuple[float, ...] = ()

    def p(self, percentile: int) -> float:
        return self.latency_us[percentile]

    @property
    def throughput_range(self) -> tuple[float, float] | None:
        """The lowest and highest throughput of the runs this median stands for."""
        runs = self.run_throughputs_per_s
        return (min(runs), max(runs)) if len(runs) > 1 else None


def _number(row: Mapping[str, str], column: str) -> float | None:
    value = (row.get(column) or "").strip()
    return float(value) if value else None


def _breakdown(row: Mapping[str, str]) -> ServerBreakdown | None:
    if "Server Queue" not in row:
        return None
    return ServerBreakdown(
        queue_us=_number(row, "Server Queue") or 0.0,
        compute_input_us=_number(row, "Server Compute Input") or 0.0,
        compute_infer_us=_number(row, "Server Compute Infer") or 0.0,
        compute_output_us=_number(row, "Server Compute Output") or 0.0,
        other_us=_number(row, "Network+Server Send/Recv") or 0.0,
    )


KNOWN_COLUMNS = {
    "Concurrency",
    "Request Rate",
    "Inferences/Second",
    "Client Send",
    "Client Recv",
    "Network+Server Send/Recv",
    "Server Queue",
    "Server Compute Input",
    "Server Compute Infer",
    "Server Compute Output",
    "Avg latency",
    *(f"p{p} latency" for p in PERCENTILES),
}


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return [dict(row) for row in csv.DictReader(stream)]


def _load_column(row: Mapping[str, str]) -> float:
    value = _number(row, "Concurrency")
    return value if value is not None else (_number(row, "Request Rate") or 0.0)


def parse_report(csv_path: Path, level: LoadLevel) -> Measurement:
    """The row of `level` in a `-f` report, with its composing models' files beside it."""
    rows = read_rows(csv_path)
    if not rows:
        raise PerfAnalyzerError(f"{csv_path} has no measurement rows")
    row = min(rows, key=lambda r: abs(_load_column(r) - level.value))
    missing = [f"p{p} latency" for p in PERCENTILES if f"p{p} latency" not in row]
    if missing or "Inferences/Second" not in row:
        raise PerfAnalyzerError(f"{csv_path} lacks columns {missing or ['Inferences/Second']}")
    composing: dict[str, ServerBreakdown] = {}
    composing_throughput: dict[str, float] = {}
    for path in sorted(csv_path.parent.glob(f"*_v*.{csv_path.name}")):
        model = path.name[: -len(csv_path.name) - 1].rsplit("_v", 1)[0]
        model_rows = read_rows(path)
        if not model_rows:
            continue
        model_row = min(model_rows, key=lambda r: abs(_load_column(r) - level.value))
        breakdown = _breakdown(model_row)
        if breakdown is not None:
            composing[model] = breakdown
            composing_throughput[model] = _number(model_row, "Inferences/Second") or 0.0
    return Measurement(
        level=level,
        throughput_per_s=float(row["Inferences/Second"]),
        latency_us={p: float(row[f"p{p} latency"]) for p in PERCENTILES},
        avg_latency_us=_number(row, "Avg latency"),
        server=_breakdown(row),
        composing=composing,
        composing_throughput_per_s=composing_throughput,
        extra={k: v for k, v in row.items() if k not in KNOWN_COLUMNS and v not in ("", None)},
    )


def run_level(
    settings: PerfAnalyzerSettings,
    level: LoadLevel,
    out_dir: Path,
    name: str,
    timeout_s: float | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Measurement:
    """Run perf_analyzer once at `level`; its CSVs and log land in `out_dir` as `name`.*"""
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_name = f"{name}.csv"
    for stale in [out_dir / csv_name, *out_dir.glob(f"*_v*.{csv_name}")]:
        stale.unlink(missing_ok=True)
    command = settings.command(level, csv_name)
    log_path = out_dir / f"{name}.log"
    lines: list[str] = []
    with log_path.open("w") as log:
        log.write(" ".join(command) + "\n")
        process = subprocess.Popen(
            command,
            cwd=out_dir,
            env=perf_analyzer_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        try:
            for line in process.stdout:
                log.write(line)
                lines.append(line.rstrip())
                if on_line is not None:
                    on_line(line.rstrip())
            status = process.wait(timeout=timeout_s)
        except BaseException:
            process.kill()
            process.wait()
            raise
    if status != 0 or not (out_dir / csv_name).is_file():
        tail = "\n".join(lines[-OUTPUT_TAIL_LINES:])
        raise PerfAnalyzerError(
            f"perf_analyzer failed at {level.label} (exit status {status}); see {log_path}:\n{tail}"
        )
    return parse_report(out_dir / csv_name, level)


def sweep(
    settings: PerfAnalyzerSettings,
    levels: Sequence[LoadLevel],
    out_dir: Path,
    prefix: str,
    on_done: Callable[[LoadLevel, Measurement | PerfAnalyzerError], None] | None = None,
) -> list[Measurement | PerfAnalyzerError]:
    """One perf_analyzer run per level, so that one unstable level does not lose the others."""
    results: list[Measurement | PerfAnalyzerError] = []
    for level in levels:
        try:
            outcome: Measurement | PerfAnalyzerError = run_level(
                settings, level, out_dir, f"{prefix}-{level.slug}"
            )
        except PerfAnalyzerError as error:
            outcome = error
        results.append(outcome)
        if on_done is not None:
            on_done(level, outcome)
    return results
