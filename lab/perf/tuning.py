"""`python -m lab perf tune`: which instance count and thread setting serve the encoder best.

Every candidate is served at once, each by its own local Triton on a copy of the model
repository that differs only in the encoder's `instance_group` count and ONNX Runtime
`intra_op_thread_count`. They are measured in turn, round after round, next to the in-process
floor, so that whatever else the machine does weighs on all of them alike; the medians over the
rounds decide. This is the search `triton-model-analyzer` would run, done with the same
perf_analyzer runner and floor as `perf run`.
"""

from __future__ import annotations

import contextlib
import csv
import os
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from inference_tools.local_server import LocalTritonServer
from inference_tools.model_config import read_model_config
from inference_tools.perf import dataset
from inference_tools.perf.perf_analyzer import (
    LoadLevel,
    PerfAnalyzerError,
    PerfAnalyzerSettings,
    run_level,
)
from tqdm import tqdm

from lab.perf import inprocess
from lab.perf.inprocess_baseline import EmbeddingPipeline
from lab.perf.suite import FLOOR_THREADS
from lab.repository_copy import linked_copy, replace_text
from python_backend.contract import ENCODER, ENSEMBLE

THREADS_PARAMETER = "intra_op_thread_count"
FLOOR = "in-process"
FLOOR_BATCH = "batch"
TUNING_CSV = "tuning.csv"
TUNING_MD = "tuning.md"


@dataclass(frozen=True, order=True)
class Variant:
    """`instances` encoder instances of `threads` intra-op threads each, written `2x1`."""

    instances: int
    threads: int

    @classmethod
    def parse(cls, text: str) -> Variant:
        try:
            instances, threads = (int(part) for part in text.lower().split("x"))
        except ValueError:
            raise ValueError(f"a variant is INSTANCESxTHREADS, such as 2x1; got {text!r}") from None
        if instances < 1 or threads < 1:
            raise ValueError(f"instances and threads must be at least 1, got {text!r}")
        return cls(instances, threads)

    @property
    def name(self) -> str:
        return f"{self.instances}x{self.threads}"


def default_variants(cores: int | None = None) -> list[Variant]:
    """One thread per instance on every core, one instance with every core, and halfway."""
    cores = max(1, cores or os.cpu_count() or 1)
    candidates = {Variant(cores, 1), Variant(1, cores), Variant(2, max(1, cores // 2))}
    return sorted(candidates)


def write_variant_config(config_path: Path, variant: Variant) -> None:
    """Rewrite a model config with the variant's instance count and intra-op thread count."""
    config = read_model_config(config_path)
    if not config.instance_group:
        config.instance_group.add()
    for group in config.instance_group:
        group.count = variant.instances
    config.parameters[THREADS_PARAMETER].string_value = str(variant.threads)
    config_path.write_text(text_format.MessageToString(config))


def variant_repository(source: Path, destination: Path, variant: Variant, model: str) -> Path:
    """A copy of `source` whose `model` runs with the variant's settings."""
    linked_copy(source, destination)
    config_path = destination / model / "config.pbtxt"
    replace_text(config_path, config_path.read_text())
    write_variant_config(config_path, variant)
    return destination


@dataclass(frozen=True)
class Sample:
    round: int
    system: str  # a variant's name, or "in-process"
    level: str  # "c1", "c16", ... or "batch 1, default threads" for the floor
    throughput_per_s: float
    p50_ms: float
    p99_ms: float


@dataclass
class TuningResult:
    samples: list[Sample] = field(default_factory=list)

    def median(self, system: str, level: str, metric: str) -> float | None:
        values = [
            getattr(s, metric) for s in self.samples if s.system == system and s.level == level
        ]
        return statistics.median(values) if values else None

    def levels(self, system: str) -> list[str]:
        return list(dict.fromkeys(s.level for s in self.samples if s.system == system))

    def _level_medians(self, system: str, metric: str, prefix: str = "") -> list[float]:
        """The medians of `metric` for each of `system`'s levels that start with `prefix`."""
        medians = (
            self.median(system, level, metric)
            for level in self.levels(system)
            if level.startswith(prefix)
        )
        return [m for m in medians if m is not None]

    def floor_batch1_p50(self) -> float | None:
        """The lower batch-1 p50 of the floor's two thread settings."""
        return min(self._level_medians(FLOOR, "p50_ms", f"{FLOOR_BATCH} 1,"), default=None)

    def floor_best_throughput(self) -> float | None:
        return max(self._level_medians(FLOOR, "throughput_per_s"), default=None)

    def saturation(self, system: str) -> float | None:
        """The highest median throughput over the concurrency levels, as `perf run` takes it."""
        return max(self._level_medians(system, "throughput_per_s"), default=None)


@dataclass(frozen=True)
class TuningOptions:
    out_dir: Path
    model_repository: Path
    variants: tuple[Variant, ...]
    concurrency: tuple[int, ...] = (1, 16)
    rounds: int = 2
    measurement_interval_ms: int = 4000
    measurement_request_count: int | None = None
    inprocess_seconds: float = 4.0
    floor_batch_size: int = 8
    dataset_size: int = dataset.DEFAULT_SIZE
    model: str = ENCODER


@contextlib.contextmanager
def _servers(options: TuningOptions) -> Iterator[dict[str, LocalTritonServer]]:
    servers: dict[str, LocalTritonServer] = {}
    try:
        for variant in options.variants:
            repository = variant_repository(
                options.model_repository,
                options.out_dir / "repositories" / variant.name,
                variant,
                options.model,
            )
            server = LocalTritonServer(repository)
            server.start()
            servers[variant.name] = server
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def _floor_samples(
    options: TuningOptions,
    pipelines: dict[int, EmbeddingPipeline],
    round_: int,
    texts: Sequence[str],
) -> list[Sample]:
    samples = []
    for threads, pipeline in pipelines.items():
        thread_text = "default threads" if threads == 0 else "1 thread"
        for batch in (1, options.floor_batch_size):
            result = inprocess.closed_loop(pipeline, texts, batch, options.inprocess_seconds)
            samples.append(
                Sample(
                    round_,
                    FLOOR,
                    f"{FLOOR_BATCH} {batch}, {thread_text}",
                    result.throughput_per_s,
                    result.p(50) / 1000,
                    result.p(99) / 1000,
                )
            )
    return samples


def run_tuning(options: TuningOptions) -> TuningResult:
    raw = options.out_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    texts = dataset.generate_texts(options.dataset_size)
    input_data = dataset.write_json(dataset.triton_input_data(texts), raw / "input_data.json")
    plain = [t.text for t in texts]
    result = TuningResult()
    pipelines = {
        t: EmbeddingPipeline(options.model_repository, intra_op_threads=t) for t in FLOOR_THREADS
    }
    steps = options.rounds * (1 + len(options.variants) * len(options.concurrency))
    with _servers(options) as servers, tqdm(total=steps, unit="step") as bar:
        for round_ in range(1, options.rounds + 1):
            bar.set_description(f"round {round_}: in-process floor")
            result.samples += _floor_samples(options, pipelines, round_, plain)
            bar.update(1)
            for name, server in servers.items():
                settings = PerfAnalyzerSettings(
                    model=ENSEMBLE,
                    url=server.http_url,
                    input_data=input_data,
                    measurement_interval_ms=options.measurement_interval_ms,
                    measurement_request_count=options.measurement_request_count,
                    # Rounds and medians stand in for perf_analyzer's own stability check;
                    # at 100 % it still refused short windows (seen in CI): 1000 % turns it off.
                    stability_percentage=1000.0,
                    max_trials=3,
                )
                for concurrency in options.concurrency:
                    bar.set_description(f"round {round_}: {name} at concurrency {concurrency}")
                    level = LoadLevel("concurrency", concurrency)
                    try:
                        m = run_level(settings, level, raw, f"{name}-r{round_}-c{concurrency}")
                    except PerfAnalyzerError as error:
                        tqdm.write(f"{name} at concurrency {concurrency}: {error}")
                    else:
                        result.samples.append(
                            Sample(
                                round_,
                                name,
                                f"c{concurrency}",
                                m.throughput_per_s,
                                m.p(50) / 1000,
                                m.p(99) / 1000,
                            )
                        )
                    bar.update(1)
    write_samples(options.out_dir / TUNING_CSV, result.samples)
    (options.out_dir / TUNING_MD).write_text(render_tuning(result, options))
    return result


def write_samples(path: Path, samples: Sequence[Sample]) -> None:
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(["round", "system", "level", "throughput_per_s", "p50_ms", "p99_ms"])
        for s in samples:
            writer.writerow(
                [
                    s.round,
                    s.system,
                    s.level,
                    f"{s.throughput_per_s:.2f}",
                    f"{s.p50_ms:.3f}",
                    f"{s.p99_ms:.3f}",
                ]
            )


def _fmt(value: float | None, digits: int = 1, suffix: str = "") -> str:
    return "n/a" if value is None else f"{value:.{digits}f}{suffix}"


def render_tuning(result: TuningResult, options: TuningOptions) -> str:
    floor_p50 = result.floor_batch1_p50()
    floor_best = result.floor_best_throughput()
    lines = [
        f"# Tuning `{options.model}`: instances x intra-op threads",
        "",
        f"{len(options.variants)} variants served at once, measured in turn over "
        f"{options.rounds} rounds next to the in-process floor; medians over the rounds. "
        "Ratios as in `perf run`: p50 at concurrency 1 against the floor's better batch-1 "
        "p50, saturation against the floor's best throughput.",
        "",
        "| variant | p50 at c1 ms | c1 ratio (target ≤ 1.3x) | saturation texts/s "
        "| saturation ratio (target ≥ 0.9x) | p99 at the highest concurrency ms |",
        "|---|---|---|---|---|---|",
    ]
    top = f"c{max(options.concurrency)}"
    for variant in options.variants:
        p50 = result.median(variant.name, "c1", "p50_ms")
        sat = result.saturation(variant.name)
        lines.append(
            f"| {variant.name} | {_fmt(p50, 2)} "
            f"| {_fmt(None if p50 is None or not floor_p50 else p50 / floor_p50, 2, 'x')} "
            f"| {_fmt(sat)} "
            f"| {_fmt(None if sat is None or not floor_best else sat / floor_best, 2, 'x')} "
            f"| {_fmt(result.median(variant.name, top, 'p99_ms'))} |"
        )
    lines += ["", "In-process floor (medians):", "", "| run | texts/s | p50 ms |", "|---|---|---|"]
    for level in result.levels(FLOOR):
        lines.append(
            f"| {level} | {_fmt(result.median(FLOOR, level, 'throughput_per_s'))} "
            f"| {_fmt(result.median(FLOOR, level, 'p50_ms'), 2)} |"
        )
    lines += ["", f"Every sample: `{TUNING_CSV}`.", ""]
    return "\n".join(lines)
