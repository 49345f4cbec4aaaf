"""The serving path alone: the ensemble with the encoder swapped for a near-zero-cost graph.

`bert_onnx.build_lookup_encoder_model` has the encoder's inputs and outputs (and its pooling
head) but almost none of its arithmetic, so what a served request costs beyond the model shows
on its own: the protocol, the ensemble scheduler, the tokenizer, the Python-backend hops and
the tensors they move. Measured with perf_analyzer (binary tensors) for one-text and 64-text
requests over HTTP and gRPC, and reported per CPU core the machine gives the run, since on a
CPU-only machine the server, its model processes and perf_analyzer share those cores.

Graded so that a rerun confirms it: the texts are every kind of the data set (queries to
documents, in its fixed shares), each level runs REPEATS times and counts by its medians, and
the graded level is the one with the most texts/s whose median p99 is within P99_BOUND_US; a
level measured again with the stability check relaxed says so in the run's notes.

Files, under a results folder (the report reads them back):

    raw/serving-path/<protocol>-<n>texts-concurrency-<c>-run<k>.csv   perf_analyzer -f reports
    raw/serving-path/run.json                                          cores, window, repository
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path

from inference_tools import bert_onnx
from inference_tools.local_server import LocalTritonServer
from inference_tools.model_config import read_model_config
from inference_tools.perf import dataset
from inference_tools.perf.perf_analyzer import (
    LoadLevel,
    Measurement,
    PerfAnalyzerError,
    PerfAnalyzerSettings,
    parse_report,
    run_level,
)
from pod_hooks.fit_instances import available_cpus

from lab.repository_copy import lift_token_budget, linked_copy

FOLDER = "serving-path"
RUN_JSON = "run.json"
MODEL = "text_embedding"
ENCODER_MODEL = "minilm"
ENCODER_FILE = Path(ENCODER_MODEL) / "1" / "model.onnx"
# Every kind of text of the data set, in its fixed shares: grading on the short ones alone
# left 35% of the traffic (paragraphs and documents, the longest to tokenize and move) out.
TEXT_KINDS = tuple(kind for kind, _ in dataset.KIND_SHARES)
TEXTS_PER_REQUEST = (1, 64)
# Runs of each level; the medians grade it, the runs' range is shown beside.
REPEATS = 3
# The latency bound a graded level must keep (median p99 over its runs): throughput bought with
# unbounded latency is no capacity a client could use.
P99_BOUND_US = 100_000.0
PROTOCOLS = ("http", "grpc")
# Texts/s per CPU core over gRPC that the serving path must sustain, per texts per request.
TARGET_PER_CORE = {1: 1000.0, 64: 4000.0}
TARGET_PROTOCOL = "grpc"
# Closed-loop levels per texts per request: a 64-text request is already a batch.
DEFAULT_CONCURRENCY = {1: (1, 4, 16), 64: (1, 2, 4)}

_NAME = re.compile(
    r"^(?P<protocol>http|grpc)-(?P<texts>\d+)texts-concurrency-(?P<c>\d+)(?:-run(?P<run>\d+))?"
    r"\.csv$"
)


@dataclass(frozen=True)
class ServingPathPoint:
    protocol: str
    texts_per_request: int
    measurement: Measurement  # throughput_per_s counts texts (perf_analyzer's inferences)
    run: int = 1

    @property
    def concurrency(self) -> int:
        return int(self.measurement.level.value)


@dataclass(frozen=True)
class GradedLevel:
    """One concurrency level's runs, counted by their medians."""

    concurrency: int
    runs: tuple[Measurement, ...]

    @property
    def throughput_per_s(self) -> float:
        return statistics.median(m.throughput_per_s for m in self.runs)

    @property
    def p99_us(self) -> float:
        return statistics.median(m.p(99) for m in self.runs)

    @property
    def throughput_range(self) -> tuple[float, float]:
        values = [m.throughput_per_s for m in self.runs]
        return min(values), max(values)


@dataclass(frozen=True)
class ServingPathResult:
    cpus: float
    points: tuple[ServingPathPoint, ...]

    def levels(self, protocol: str, texts_per_request: int) -> list[GradedLevel]:
        runs: dict[int, list[Measurement]] = {}
        for p in self.points:
            if p.protocol == protocol and p.texts_per_request == texts_per_request:
                runs.setdefault(p.concurrency, []).append(p.measurement)
        return [GradedLevel(c, tuple(ms)) for c, ms in sorted(runs.items())]

    def graded(
        self, protocol: str, texts_per_request: int, p99_bound_us: float = P99_BOUND_US
    ) -> GradedLevel | None:
        """The level with the most texts/s (median) whose median p99 keeps the bound."""
        within = [
            level
            for level in self.levels(protocol, texts_per_request)
            if level.p99_us <= p99_bound_us
        ]
        return max(within, key=lambda level: level.throughput_per_s) if within else None

    def per_core(self, protocol: str, texts_per_request: int) -> float | None:
        graded = self.graded(protocol, texts_per_request)
        return None if graded is None else graded.throughput_per_s / self.cpus

    def per_core_range(self, protocol: str, texts_per_request: int) -> tuple[float, float] | None:
        graded = self.graded(protocol, texts_per_request)
        if graded is None or len(graded.runs) < 2:
            return None
        low, high = graded.throughput_range
        return low / self.cpus, high / self.cpus


def lookup_repository(source: Path, destination: Path) -> Path:
    """A linked copy of `source` (its tokenizer's token budget lifted, since the lookup graph
    has none of the cost the budget is sized for) whose encoder is the lookup graph."""
    lift_token_budget(linked_copy(source, destination))
    config = read_model_config(destination / ENCODER_MODEL / "config.pbtxt")
    (hidden,) = config.output[0].dims
    encoder = destination / ENCODER_FILE
    encoder.unlink(missing_ok=True)  # a hard link: never write through it into the source
    bert_onnx.save_model_atomically(
        bert_onnx.build_lookup_encoder_model(hidden_size=int(hidden)), encoder
    )
    return destination


def serving_texts(size: int = dataset.DEFAULT_SIZE) -> list[str]:
    return [t.text for t in dataset.generate_texts(size) if t.kind in TEXT_KINDS]


def input_data(texts: Sequence[str]) -> dict:
    """perf_analyzer --input-data: one text per entry; `-b N` puts N entries in a request."""
    return {"data": [{"TEXT": {"content": [text], "shape": [1]}} for text in texts]}


def _name(protocol: str, texts_per_request: int, concurrency: int, run: int) -> str:
    return f"{protocol}-{texts_per_request}texts-concurrency-{concurrency}-run{run}"


@dataclass(frozen=True)
class ServingPathOptions:
    out_dir: Path  # the run's results folder; files go to raw/serving-path/
    model_repository: Path
    protocols: tuple[str, ...] = PROTOCOLS
    texts_per_request: tuple[int, ...] = TEXTS_PER_REQUEST
    concurrency: dict[int, tuple[int, ...]] | None = None
    measurement_interval_ms: int = 4000
    measurement_request_count: int | None = None
    stability_percentage: float = 30.0
    max_trials: int = 6
    repeats: int = REPEATS

    @property
    def folder(self) -> Path:
        return self.out_dir / "raw" / FOLDER

    def levels(self, texts_per_request: int) -> tuple[int, ...]:
        return (self.concurrency or DEFAULT_CONCURRENCY)[texts_per_request]


def measure(
    options: ServingPathOptions,
    urls: dict[str, str],
    step: Callable[[str], AbstractContextManager[None]] | None = None,
    errors: list[str] | None = None,
) -> list[ServingPathPoint]:
    """Every protocol x texts-per-request x concurrency level against servers at `urls`
    (protocol -> host:port); a level that fails is noted in `errors` and left out."""
    folder = options.folder
    data_path = folder / "input_data.json"
    dataset.write_json(input_data(serving_texts()), data_path)
    points = []
    for protocol in options.protocols:
        for texts in options.texts_per_request:
            settings = PerfAnalyzerSettings(
                model=MODEL,
                url=urls[protocol],
                protocol=protocol,
                input_data=data_path,
                measurement_interval_ms=options.measurement_interval_ms,
                measurement_request_count=options.measurement_request_count,
                stability_percentage=options.stability_percentage,
                max_trials=options.max_trials,
                verbose_csv=False,
                extra_args=(
                    f"-b{texts}",
                    "--input-tensor-format=binary",
                    "--output-tensor-format=binary",
                ),
            )
            for concurrency in options.levels(texts):
                for run in range(1, options.repeats + 1):
                    name = _name(protocol, texts, concurrency, run)
                    what = f"serving path {protocol} {texts} texts c{concurrency} run {run}"
                    with step(what) if step is not None else nullcontext():
                        measurement = _measure_level(settings, concurrency, folder, name, errors)
                    if measurement is not None:
                        points.append(ServingPathPoint(protocol, texts, measurement, run))
    return points


def _measure_level(
    settings: PerfAnalyzerSettings,
    concurrency: int,
    folder: Path,
    name: str,
    errors: list[str] | None,
) -> Measurement | None:
    level = LoadLevel("concurrency", concurrency)
    try:
        return run_level(settings, level, folder, name)
    except PerfAnalyzerError:
        pass
    # Once more with twice the window and no stability demand: on a shared machine even the
    # serving path alone can swing by more than 100 % between windows.
    relaxed = replace(
        settings,
        measurement_interval_ms=settings.measurement_interval_ms * 2,
        stability_percentage=1000.0,
    )
    try:
        measurement = run_level(relaxed, level, folder, name)
    except PerfAnalyzerError:
        if errors is not None:
            errors.append(f"serving path {name}: no measurement, see raw/{FOLDER}/{name}.log")
        return None
    if errors is not None:
        errors.append(
            f"serving path {name}: unstable at {settings.stability_percentage:g}%, measured "
            "again with twice the window and the stability check off"
        )
    return measurement


def run(
    options: ServingPathOptions,
    step: Callable[[str], AbstractContextManager[None]] | None = None,
    errors: list[str] | None = None,
) -> ServingPathResult:
    """Serve the lookup repository on free ports, measure it, write run.json beside the CSVs."""
    folder = options.folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    repository = lookup_repository(options.model_repository, folder / "model_repository")
    server = LocalTritonServer(repository)
    server.start()
    try:
        points = measure(options, {"http": server.http_url, "grpc": server.grpc_url}, step, errors)
    finally:
        server.stop()
        shutil.rmtree(repository, ignore_errors=True)
    cpus = available_cpus()
    (folder / RUN_JSON).write_text(
        json.dumps(
            {
                "cpus": cpus,
                "source_repository": str(options.model_repository),
                "measurement_interval_ms": options.measurement_interval_ms,
                "texts": f"{len(serving_texts())} texts of kinds {', '.join(TEXT_KINDS)}",
            },
            indent=2,
        )
        + "\n"
    )
    return ServingPathResult(cpus, tuple(points))


def read(results_dir: Path) -> ServingPathResult | None:
    """The serving-path measurements of a results folder, or None where the run had none."""
    folder = results_dir / "raw" / FOLDER
    info_path = folder / RUN_JSON
    if not info_path.is_file():
        return None
    points = []
    for path in sorted(folder.glob("*.csv")):
        match = _NAME.match(path.name)
        if match is None:
            continue
        level = LoadLevel("concurrency", float(match["c"]))
        points.append(
            ServingPathPoint(
                match["protocol"],
                int(match["texts"]),
                parse_report(path, level),
                int(match["run"] or 1),
            )
        )
    cpus = float(json.loads(info_path.read_text())["cpus"])
    return ServingPathResult(cpus, tuple(points))
