"""The serving path alone: the ensemble with the encoder swapped for a near-zero-cost graph.

`bert_onnx.build_lookup_encoder_model` has the encoder's inputs and outputs (and its pooling
head) but almost none of its arithmetic, so what a served request costs beyond the model shows
on its own: the protocol, the ensemble scheduler, the tokenizer, the Python-backend hops and
the tensors they move. Measured with perf_analyzer (binary tensors) for one-text and 64-text
requests over HTTP and gRPC, and reported per CPU core the machine gives the run, since on a
CPU-only machine the server, its model processes and perf_analyzer share those cores.

Files, under a results folder (the report reads them back):

    raw/serving-path/<protocol>-<n>texts-concurrency-<c>.csv   perf_analyzer -f reports
    raw/serving-path/run.json                                   cores, window, repository
"""

from __future__ import annotations

import json
import re
import shutil
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

FOLDER = "serving-path"
RUN_JSON = "run.json"
MODEL = "text_embedding"
ENCODER_MODEL = "minilm"
ENCODER_FILE = Path(ENCODER_MODEL) / "1" / "model.onnx"
# Short and medium sentences (queries and single sentences of the data set): what the issue's
# targets were stated for, and where the serving path weighs most next to the model.
TEXT_KINDS = ("query", "sentence")
TEXTS_PER_REQUEST = (1, 64)
PROTOCOLS = ("http", "grpc")
# Texts/s per CPU core over gRPC that the serving path must sustain, per texts per request.
TARGET_PER_CORE = {1: 1000.0, 64: 4000.0}
TARGET_PROTOCOL = "grpc"
# Closed-loop levels per texts per request: a 64-text request is already a batch.
DEFAULT_CONCURRENCY = {1: (1, 4, 16), 64: (1, 2, 4)}

_NAME = re.compile(r"^(?P<protocol>http|grpc)-(?P<texts>\d+)texts-concurrency-(?P<c>\d+)\.csv$")


@dataclass(frozen=True)
class ServingPathPoint:
    protocol: str
    texts_per_request: int
    measurement: Measurement  # throughput_per_s counts texts (perf_analyzer's inferences)

    @property
    def concurrency(self) -> int:
        return int(self.measurement.level.value)


@dataclass(frozen=True)
class ServingPathResult:
    cpus: float
    points: tuple[ServingPathPoint, ...]

    def best(self, protocol: str, texts_per_request: int) -> ServingPathPoint | None:
        matching = [
            p
            for p in self.points
            if p.protocol == protocol and p.texts_per_request == texts_per_request
        ]
        return max(matching, key=lambda p: p.measurement.throughput_per_s) if matching else None

    def per_core(self, protocol: str, texts_per_request: int) -> float | None:
        best = self.best(protocol, texts_per_request)
        return None if best is None else best.measurement.throughput_per_s / self.cpus


def lookup_repository(source: Path, destination: Path) -> Path:
    """A copy of `source` (hard links where possible) whose encoder is the lookup graph."""
    shutil.rmtree(destination, ignore_errors=True)
    shutil.copytree(source, destination, copy_function=_link_or_copy, symlinks=True)
    config = read_model_config(destination / ENCODER_MODEL / "config.pbtxt")
    (hidden,) = config.output[0].dims
    encoder = destination / ENCODER_FILE
    encoder.unlink(missing_ok=True)  # a hard link: never write through it into the source
    bert_onnx.save_model_atomically(
        bert_onnx.build_lookup_encoder_model(hidden_size=int(hidden)), encoder
    )
    return destination


def _link_or_copy(source: str, destination: str) -> str:
    try:
        Path(destination).hardlink_to(source)
    except OSError:
        shutil.copy2(source, destination)
    return destination


def serving_texts(size: int = dataset.DEFAULT_SIZE) -> list[str]:
    return [t.text for t in dataset.generate_texts(size) if t.kind in TEXT_KINDS]


def input_data(texts: Sequence[str]) -> dict:
    """perf_analyzer --input-data: one text per entry; `-b N` puts N entries in a request."""
    return {"data": [{"TEXT": {"content": [text], "shape": [1]}} for text in texts]}


def _name(protocol: str, texts_per_request: int, concurrency: int) -> str:
    return f"{protocol}-{texts_per_request}texts-concurrency-{concurrency}"


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
                name = _name(protocol, texts, concurrency)
                what = f"serving path {protocol} {texts} texts c{concurrency}"
                with step(what) if step is not None else nullcontext():
                    measurement = _measure_level(settings, concurrency, folder, name, errors)
                if measurement is not None:
                    points.append(ServingPathPoint(protocol, texts, measurement))
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
        return run_level(relaxed, level, folder, name)
    except PerfAnalyzerError:
        if errors is not None:
            errors.append(f"serving path {name}: no measurement, see raw/{FOLDER}/{name}.log")
        return None


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
            ServingPathPoint(match["protocol"], int(match["texts"]), parse_report(path, level))
        )
    cpus = float(json.loads(info_path.read_text())["cpus"])
    return ServingPathResult(cpus, tuple(points))
