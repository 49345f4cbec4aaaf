"""One benchmark run: Triton and the two baselines measured back to back, then the report.

Order matters on a shared machine: the in-process batch-1 floor is measured right before and
right after Triton's concurrency 1, the in-process batch sweep (1 to 64) right after Triton's
sweep, and at each fixed offered load the three systems run one after the other.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
import shlex
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from inference_tools.local_server import LocalTritonServer
from inference_tools.perf import dataset
from inference_tools.perf.measured_model import MeasuredModel, choose_measured_model
from inference_tools.perf.perf_analyzer import (
    LoadLevel,
    Measurement,
    PerfAnalyzerError,
    PerfAnalyzerSettings,
    run_level,
)
from tqdm import tqdm

from lab.perf import inprocess, serving_path
from lab.perf.inprocess_baseline import (
    EmbeddingPipeline,
    encoder_instances,
    served_pipelines,
    served_session_options,
    served_settings_text,
)
from lab.perf.microservice import MODEL_NAME, MicroserviceProcess
from lab.perf.ratios import BATCH_ROLE, PARALLEL_ROLE, SERVED_THREADS_ROLE_PREFIX, saturation
from lab.perf.report import Report, write_report
from lab.perf.results import (
    MICROSERVICE,
    RAW,
    TRITON,
    InProcessRow,
    medians_of_runs,
    write_inprocess,
    write_run_info,
)
from lab.perf.serving_path import REPEATS

LOG = logging.getLogger(__name__)
# The floor is the better of ONNX Runtime's default (a pool of one thread per core, which spins
# between operators) and one thread per call, measured each time: on a busy machine the spinning
# pool can lose to a single thread, and a floor that loses to a setting a user could pick is no
# floor. The microservice gets the served encoder's session options (microservice.py).
FLOOR_THREADS = (0, 1)
# The throughput floor's batch sizes: a fixed range, whatever the Triton concurrency list, up to
# the encoder's max_batch_size; its throughput must rise with them (ratios.floor_not_rising).
FLOOR_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64)


@dataclass(frozen=True)
class SuiteOptions:
    out_dir: Path
    model_repository: Path
    url: str | None = None  # None: start a local server on free ports
    model: str | None = None  # None: the repository's default measured model (model_roles)
    protocol: str = "http"
    metrics_url: str | None = None
    concurrency: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    microservice_concurrency: tuple[int, ...] = (1, 2, 4, 8)
    # Fixed offered loads, as fractions of the microservice's saturation throughput, so that
    # every system can carry them and their latencies compare.
    offered_fractions: tuple[float, ...] = (0.3, 0.6, 0.9)
    distributions: tuple[str, ...] = ("constant", "poisson")
    measurement_interval_ms: int = 4000
    measurement_request_count: int | None = None
    stability_percentage: float = 30.0
    max_trials: int = 6
    # Runs of every perf_analyzer level: the medians grade the targets, their range is shown.
    repeats: int = REPEATS
    inprocess_seconds: float = 6.0
    floor_batch_sizes: tuple[int, ...] = FLOOR_BATCH_SIZES
    baselines: bool = True
    # The serving path alone (encoder swapped for a lookup graph, see serving_path): needs the
    # local server, so it runs only where the run starts one. "only" skips everything else.
    serving_path: str = "include"  # "include", "only" or "skip"
    dataset_size: int = dataset.DEFAULT_SIZE
    serving_path_concurrency: dict[int, tuple[int, ...]] | None = None  # None: the defaults
    command: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)


class Progress:
    """A progress bar over every measurement of the run, naming the one in progress."""

    def __init__(self, total: int) -> None:
        self.bar = tqdm(total=total, unit="step", dynamic_ncols=True, file=sys.stderr)

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        self.bar.set_description(what)
        try:
            yield
        finally:
            self.bar.update(1)

    def close(self) -> None:
        self.bar.close()


def _statistics(url: str, protocol: str) -> dict[str, Any]:
    """Every model's statistics so far, from Triton's statistics extension."""
    if protocol == "grpc":
        import tritonclient.grpc as client_module

        client = client_module.InferenceServerClient(url)
        stats = client.get_inference_statistics(as_json=True)
    else:
        import tritonclient.http as client_module

        client = client_module.InferenceServerClient(url)
        stats = client.get_inference_statistics()
    client.close()
    return {str(m["name"]): m for m in stats.get("model_stats", [])}


def _batch_counts(stats: dict[str, Any], model: str) -> dict[int, int]:
    counts: dict[int, int] = {}
    for entry in stats.get(model, {}).get("batch_stats", []):
        size = int(entry["batch_size"])
        counts[size] = counts.get(size, 0) + int(entry["compute_infer"]["count"])
    return counts


def _busiest_step(before: dict[str, Any], after: dict[str, Any], measured: MeasuredModel) -> str:
    """The model whose batches the report lists: for an ensemble, the step that computed
    longest during the run (where batching pays); for a plain model, itself."""
    steps = [
        str(step["model_name"])
        for step in measured.roles.configs[measured.model]
        .get("ensemble_scheduling", {})
        .get("step", [])
    ]

    def compute_ns(stats: dict[str, Any], model: str) -> int:
        infer = stats.get(model, {}).get("inference_stats", {}).get("compute_infer", {})
        return int(infer.get("ns", 0))

    if not steps:
        return measured.model
    return max(steps, key=lambda m: compute_ns(after, m) - compute_ns(before, m))


class Suite:
    def __init__(self, options: SuiteOptions) -> None:
        self.options = options
        self.raw = options.out_dir / RAW
        self.inprocess_rows: list[InProcessRow] = []
        self.errors: list[str] = []
        self.measurements: list[tuple[str, Measurement]] = []
        self.texts = dataset.generate_texts(options.dataset_size)
        self.plain_texts = [t.text for t in self.texts]
        self.pipelines: dict[int, EmbeddingPipeline] = {}
        self.served_pipeline: EmbeddingPipeline | None = None
        self.microservice_settings = ""
        self.floor_threads = FLOOR_THREADS[0]
        self.progress: Progress | None = None
        self.measured_model = choose_measured_model(
            options.model_repository, options.model, self.raw / "input_data.json", self.texts
        )
        if options.baselines and not self.measured_model.is_default:
            # The in-process pipeline and the microservice reproduce the default model only.
            self.options = replace(options, baselines=False)
            self.errors.append(f"{self.measured_model.model}: measured without the baselines")

    # -- the pieces -----------------------------------------------------------------------

    def _settings(self, url: str, **changes: Any) -> PerfAnalyzerSettings:
        o = self.options
        base = PerfAnalyzerSettings(
            model=self.measured_model.model,
            url=url,
            protocol=o.protocol,
            input_data=self.measured_model.input_data,
            measurement_interval_ms=o.measurement_interval_ms,
            measurement_request_count=o.measurement_request_count,
            stability_percentage=o.stability_percentage,
            max_trials=o.max_trials,
            metrics_url=o.metrics_url,
        )
        return replace(base, **changes)

    def _measure(self, settings: PerfAnalyzerSettings, system: str, level: LoadLevel) -> None:
        """The level `repeats` times in a row; the report takes their medians (results.py)."""
        for run in range(1, self.options.repeats + 1):
            self._measure_run(settings, system, level, run)

    def _measure_run(
        self, settings: PerfAnalyzerSettings, system: str, level: LoadLevel, run: int
    ) -> Measurement | None:
        assert self.progress is not None
        name = f"{system}-{level.slug}-run{run}"
        with self.progress.step(f"{system} {level.label} run {run}"):
            try:
                measurement = run_level(settings, level, self.raw, name)
                self.measurements.append((system, measurement))
                return measurement
            except PerfAnalyzerError as error:
                LOG.info("%s", error)
            # Once more, with windows twice as long and the stability check relaxed; the
            # report says which levels needed it.
            relaxed = replace(
                settings,
                measurement_interval_ms=settings.measurement_interval_ms * 2,
                stability_percentage=max(100.0, settings.stability_percentage),
            )
            try:
                measurement = run_level(relaxed, level, self.raw, name)
            except PerfAnalyzerError as error:
                LOG.warning("%s", error)
                self.errors.append(
                    f"{system} at {level.label}, run {run}: no measurement, see raw/{name}.log"
                )
                return None
            self.measurements.append((system, measurement))
            self.errors.append(
                f"{system} at {level.label}, run {run}: unstable at "
                f"{settings.stability_percentage:g}%, measured again with twice the window and "
                "the stability check relaxed"
            )
            return measurement

    def _inprocess(self, role: str, run: Callable[[], inprocess.InProcessResult]) -> None:
        assert self.progress is not None
        with self.progress.step(f"in-process {role}"):
            self.inprocess_rows.append(InProcessRow(role, run()))

    def _closed(
        self, batch_size: int, served_role: str | None = None, *, again: bool = False
    ) -> Callable[[], inprocess.InProcessResult]:
        """The better of the floor's thread settings at this batch size (see FLOOR_THREADS).
        With `served_role`, a run with the encoder's served session options is also kept, as a
        row of that role: the floor the served latency is held against. With `again`, only the
        setting that won at batch 1 before: a run to compare with that one, like with like."""
        texts, seconds = self.plain_texts, self.options.inprocess_seconds

        def run() -> inprocess.InProcessResult:
            results = []
            settings = list(self.pipelines.items())
            if again:
                settings = [(self.floor_threads, self.pipelines[self.floor_threads])]
            for threads, pipeline in settings:
                result = inprocess.closed_loop(pipeline, texts, batch_size, seconds)
                result = replace(result, label=f"{result.label}, {_threads_text(threads)}")
                results.append((result, threads))
            if served_role is not None and self.served_pipeline is not None:
                served = inprocess.closed_loop(self.served_pipeline, texts, batch_size, seconds)
                served = replace(served, label=f"{served.label}, as served")
                self.inprocess_rows.append(InProcessRow(served_role, served))
            best, threads = max(results, key=lambda pair: pair[0].throughput_per_s)
            if batch_size == 1:
                self.floor_threads = threads
            return best

        return run

    def _open(self, rate: float, distribution: str) -> Callable[[], inprocess.InProcessResult]:
        texts, seconds = self.plain_texts, self.options.inprocess_seconds * 2

        def run() -> inprocess.InProcessResult:
            # The thread setting that won at batch 1: an open loop serves one text at a time.
            threads = self.floor_threads
            result = inprocess.open_loop(
                self.pipelines[threads], texts, rate, seconds, distribution
            )
            return replace(result, label=f"{result.label}, {_threads_text(threads)}")

        return run

    # -- the run --------------------------------------------------------------------------

    def serving_path_options(self) -> serving_path.ServingPathOptions:
        o = self.options
        return serving_path.ServingPathOptions(
            out_dir=o.out_dir,
            model_repository=o.model_repository,
            concurrency=o.serving_path_concurrency,
            measurement_interval_ms=o.measurement_interval_ms,
            measurement_request_count=o.measurement_request_count,
            stability_percentage=o.stability_percentage,
            max_trials=o.max_trials,
            repeats=o.repeats,
        )

    def runs_serving_path(self) -> bool:
        return self.options.url is None and self.options.serving_path != "skip"

    def total_steps(self) -> int:
        o = self.options
        serving = 0
        if self.runs_serving_path():
            sp = self.serving_path_options()
            serving = sp.repeats * sum(
                len(sp.protocols) * len(sp.levels(n)) for n in sp.texts_per_request
            )
        if o.serving_path == "only":
            return serving
        steps = serving + len(o.concurrency) * o.repeats
        if o.baselines:
            offered = len(o.offered_fractions) * len(o.distributions)
            ms_levels = len(set(o.concurrency) & set(o.microservice_concurrency))
            measured = (ms_levels + offered * 2) * o.repeats
            steps += 3 + len(o.floor_batch_sizes) + measured + offered
        return steps

    def run(self) -> Report:
        o = self.options
        # A report is built from every file in raw/: files of an earlier run must not join in.
        shutil.rmtree(self.raw, ignore_errors=True)
        o.out_dir.mkdir(parents=True, exist_ok=True)
        self.measured_model = choose_measured_model(
            o.model_repository, self.measured_model.model, self.raw / "input_data.json", self.texts
        )
        dataset.write_json(
            dataset.openai_input_data(self.texts, MODEL_NAME), self.raw / "openai_input_data.json"
        )
        if o.serving_path == "only":
            return self._serving_path_only()
        with self._triton() as (url, metrics_url), self._microservice() as ms_settings:
            info = self._run_info(url)
            if metrics_url and not o.metrics_url:
                self.options = o = replace(o, metrics_url=metrics_url)
            if o.baselines:
                self.pipelines = {
                    threads: EmbeddingPipeline(o.model_repository, intra_op_threads=threads)
                    for threads in FLOOR_THREADS
                }
                self.served_pipeline = EmbeddingPipeline(
                    o.model_repository, options=served_session_options(o.model_repository)
                )
                info["baselines"] = self._baseline_settings()
            self.progress = Progress(self.total_steps())
            try:
                before = _statistics(url, o.protocol)
                self._closed_loops(url, ms_settings)
                stats = _statistics(url, o.protocol)
                batched = _busiest_step(before, stats, self.measured_model)
                after = _batch_counts(stats, batched)
                before = _batch_counts(before, batched)
                info["server_batch_sizes_model"] = batched
                info["server_batch_sizes"] = {
                    str(size): count - before.get(size, 0)
                    for size, count in sorted(after.items())
                    if count > before.get(size, 0)
                }
                if ms_settings is not None:
                    self._offered_loads(url, ms_settings)
            except BaseException:
                self.progress.close()
                raise
        # After the full server has stopped: the serving path gets the machine to itself.
        try:
            if self.runs_serving_path():
                serving_path.run(self.serving_path_options(), self.progress.step, self.errors)
        finally:
            self.progress.close()
        if self.inprocess_rows:
            write_inprocess(o.out_dir, self.inprocess_rows)
        info["notes"] = [*o.notes, *self.errors]
        info["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        write_run_info(o.out_dir, info)
        return write_report(o.out_dir)

    def _serving_path_only(self) -> Report:
        o = self.options
        if o.url is not None:
            raise ValueError("the serving-path mode serves its own repository: leave out --url")
        self.progress = Progress(self.total_steps())
        try:
            serving_path.run(self.serving_path_options(), self.progress.step, self.errors)
        finally:
            self.progress.close()
        info = self._run_info("local server with the lookup encoder")
        info["notes"] = [*o.notes, *self.errors]
        info["finished"] = time.strftime("%Y-%m-%d %H:%M:%S %Z")
        write_run_info(o.out_dir, info)
        return write_report(o.out_dir)

    def _closed_loops(self, url: str, ms_settings: PerfAnalyzerSettings | None) -> None:
        """Level by level, Triton at concurrency c and the microservice at c one right after
        the other, so that whatever else the machine does at that moment weighs on both; then
        the in-process floor over its fixed batch sizes."""
        o = self.options
        settings = self._settings(url)
        for concurrency in o.concurrency:
            level = LoadLevel("concurrency", concurrency)
            if concurrency == 1 and o.baselines:
                self._inprocess(
                    "batch1-before", self._closed(1, f"{SERVED_THREADS_ROLE_PREFIX}-before")
                )
            self._measure(settings, TRITON, level)
            if concurrency == 1 and o.baselines:
                self._inprocess(
                    "batch1-after",
                    self._closed(1, f"{SERVED_THREADS_ROLE_PREFIX}-after", again=True),
                )
            if ms_settings is not None and concurrency in o.microservice_concurrency:
                self._measure(ms_settings, MICROSERVICE, level)
        if o.baselines:
            for batch_size in o.floor_batch_sizes:
                self._inprocess(BATCH_ROLE, self._closed(batch_size))
            self._inprocess(PARALLEL_ROLE, self._parallel)

    def _parallel(self) -> inprocess.InProcessResult:
        """The served sessions, one caller per encoder instance, one text per call."""
        o = self.options
        pipelines = served_pipelines(o.model_repository)
        result = inprocess.parallel_closed_loop(pipelines, self.plain_texts, o.inprocess_seconds)
        return replace(result, label=f"{result.label}, as served")

    def _baseline_settings(self) -> list[str]:
        """Each baseline's settings, in words, for the report."""
        o = self.options
        sizes = ", ".join(str(size) for size in o.floor_batch_sizes)
        return [
            f"microservice: {self.microservice_settings}",
            f"in-process floor: one caller, closed loop, {o.inprocess_seconds:g} s at each batch "
            f"size ({sizes}), each size warmed up on every padded shape first; the better of "
            f"{' and '.join(_threads_text(t) for t in FLOOR_THREADS)} (ONNX Runtime's "
            "spinning on); its throughput must rise with the batch size",
            "c1 overhead floor: in-process batch 1 with the served encoder's session options "
            f"({served_settings_text(o.model_repository)}), before and after Triton's c1",
            "in-process floor, as served: one caller per encoder instance "
            f"({encoder_instances(o.model_repository)}), each with its own session with the "
            "served options, one text per call, "
            f"{o.inprocess_seconds:g} s: the cores' capacity with the model run the way the "
            "server runs it",
        ]

    def _offered_loads(self, triton_url: str, ms_settings: PerfAnalyzerSettings) -> None:
        """Fixed request rates that every system can carry (fractions of the microservice's
        capacity), the three systems back to back at each."""
        o = self.options
        capacity = saturation(self.measured(MICROSERVICE))
        if capacity is None:
            self.errors.append("the microservice sweep failed: no fixed offered loads")
            return
        for fraction in o.offered_fractions:
            rate = max(1.0, round(capacity.throughput_per_s * fraction))
            for distribution in o.distributions:
                level = LoadLevel("request_rate", rate, distribution)
                self._measure(self._settings(triton_url), TRITON, level)
                self._measure(ms_settings, MICROSERVICE, level)
                self._inprocess(f"offered-{distribution}", self._open(rate, distribution))

    def measured(self, system: str) -> list[Measurement]:
        """The system's levels so far, each the median of its runs."""
        return medians_of_runs([m for s, m in self.measurements if s == system])

    @contextlib.contextmanager
    def _microservice(self) -> Iterator[PerfAnalyzerSettings | None]:
        o = self.options
        if not o.baselines:
            yield None
            return
        with MicroserviceProcess(o.model_repository, self.raw / "microservice.log") as service:
            self.microservice_settings = service.settings_text
            yield service.perf_settings(
                self._settings(service.url), self.raw / "openai_input_data.json"
            )

    @contextlib.contextmanager
    def _triton(self) -> Iterator[tuple[str, str | None]]:
        o = self.options
        if o.url is not None:
            yield o.url, o.metrics_url
            return
        server = LocalTritonServer(o.model_repository.resolve())
        server.start()
        try:
            url = server.http_url if o.protocol == "http" else server.grpc_url
            yield url, server.metrics_url.removeprefix("http://")
        finally:
            server.stop()

    def _run_info(self, url: str) -> dict[str, Any]:
        o = self.options
        counts: dict[str, int] = {}
        for text in self.texts:
            counts[text.kind] = counts.get(text.kind, 0) + 1
        return {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {_cpu_model()}",
            "triton_url": url if o.url else f"{url} (local server started by this run)",
            "model": self.measured_model.model,
            "protocol": o.protocol,
            "perf_analyzer": (
                f"measurement window {o.measurement_interval_ms} ms, stability "
                f"{o.stability_percentage:g}%, up to {o.max_trials} windows per level, "
                f"{o.repeats} run{'s' if o.repeats != 1 else ''} of each level (the targets "
                "graded on the medians, the runs' range beside)"
            ),
            "dataset": (
                f"{len(self.texts)} texts, "
                + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
                if self.measured_model.input_data is not None
                else "perf_analyzer's generated inputs, shaped as the model's config says"
            ),
            "command": o.command or shlex.join(sys.argv),
        }


def _threads_text(threads: int) -> str:
    return "ONNX Runtime default threads" if threads == 0 else f"{threads} ONNX Runtime thread"


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def smoke(options: SuiteOptions) -> SuiteOptions:
    """A run of about a minute that exercises every part. Few levels, windows of a few requests,
    no stability demands: its numbers are not worth quoting."""
    return replace(
        options,
        concurrency=(1, 2),
        microservice_concurrency=(1, 2),
        offered_fractions=(0.5,),
        distributions=("poisson",),
        measurement_request_count=16,
        # Off, in effect: windows of 16 requests on a loaded machine disagree by more than 100 %.
        stability_percentage=1000.0,
        max_trials=3,
        inprocess_seconds=1.0,
        floor_batch_sizes=(1, 8),
        dataset_size=64,
        serving_path_concurrency={1: (2,), 64: (1,)},
        repeats=2,
    )


def run_suite(options: SuiteOptions) -> Report:
    return Suite(options).run()
