"""`inference-tools perf`: measure a running server with perf_analyzer; the perf Job's data set.

The benchmark study against the baselines (`perf run`, `perf tune`, `perf report`) is the lab's:
`python -m lab perf`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from inference_tools.commands.options import add_measured_model, add_model_repository
from inference_tools.paths import KUSTOMIZE_DIR, RESULTS_DIR

# The Kubernetes Job's copy: a ConfigMap can only take files from inside its kustomization.
PERF_JOB_INPUT_DATA = KUSTOMIZE_DIR / "components" / "perf-job" / "input_data.json"
DEFAULT_MEASURE_OUT = RESULTS_DIR / "measure"

DESCRIPTION = """\
Measure a served model with perf_analyzer:

  measure  a running Triton at each load level: throughput, latency, server queue and compute
  dataset  write the benchmark's texts as perf_analyzer --input-data JSON (the perf Job's)

Run `inference-tools perf ACTION --help` for the options of each. The benchmark study against
the in-process and microservice baselines runs from a checkout: `make perf`.
"""

MEASURE_HELP = """\
Measure a running Triton with perf_analyzer, one run per concurrency level: throughput, client
latency percentiles, and the server's queue and compute time per request. The model is --model,
else the repository's first ensemble clients call; a model taking one text per request gets the
benchmark's texts, any other perf_analyzer's generated data. perf_analyzer's CSVs go into --out.
"""
MEASURE_EXAMPLES = """\
Examples:
  inference-tools perf measure --url 127.0.0.1:8000
  inference-tools perf measure --url 10.0.0.7:8001 --protocol grpc --concurrency 1,8,32
  inference-tools perf measure --url 127.0.0.1:8000 --duration-ms 8000 --stability-percentage 50
"""

DATASET_HELP = """\
Write the benchmark's texts as a perf_analyzer --input-data JSON file. The texts come from a
fixed seed, so the file is the same on every run; the default output is the copy the Kubernetes
perf Job mounts (a ConfigMap takes files from inside its kustomization only).
"""
DATASET_EXAMPLES = """\
Examples:
  inference-tools perf dataset                          # refresh the Kubernetes Job's data set
  inference-tools perf dataset /tmp/input_data.json
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "perf",
        help="measure a running Triton; the perf Job's data set (the benchmark study: make perf)",
        description=DESCRIPTION,
    )
    commands = parser.add_subparsers(dest="perf_command", metavar="ACTION", required=True)
    measure = commands.add_parser(
        "measure",
        help="measure a running Triton at each load level",
        description=MEASURE_HELP,
        epilog=MEASURE_EXAMPLES,
    )
    measure.add_argument("--url", required=True, help="Triton's HTTP or gRPC host:port")
    measure.add_argument(
        "--protocol",
        choices=("http", "grpc"),
        default="http",
        help="the protocol --url speaks",
    )
    add_measured_model(measure)
    add_model_repository(measure, help="the served repository's configs: the model and its inputs")
    measure.add_argument(
        "--concurrency",
        type=_levels,
        default=(1, 4, 16),
        metavar="LEVELS",
        help="requests in flight at each level, comma-separated",
    )
    measure.add_argument(
        "--duration-ms", type=int, default=4000, help="perf_analyzer measurement window, in ms"
    )
    measure.add_argument(
        "--stability-percentage",
        type=float,
        default=30.0,
        help="perf_analyzer's bound on how much the last windows may differ; a busy machine "
        "needs more (or longer windows)",
    )
    measure.add_argument(
        "--out", type=Path, default=DEFAULT_MEASURE_OUT, help="folder for perf_analyzer's CSVs"
    )
    measure.set_defaults(func=measure_command)
    data = commands.add_parser(
        "dataset",
        help="write the data set as perf_analyzer --input-data JSON (reproducible)",
        description=DATASET_HELP,
        epilog=DATASET_EXAMPLES,
    )
    data.add_argument(
        "output", type=Path, nargs="?", default=PERF_JOB_INPUT_DATA, help="JSON file to write"
    )
    data.set_defaults(func=dataset_command)


def _levels(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def measure_command(args: argparse.Namespace) -> int:
    from inference_tools.perf.perf_analyzer import (
        LoadLevel,
        Measurement,
        PerfAnalyzerError,
        PerfAnalyzerSettings,
        sweep,
    )
    from inference_tools.perf.targets import resolve_target

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    loaded = resolve_target(args.model_repository, args.model, out / "input-data.json")
    settings = PerfAnalyzerSettings(
        model=loaded.model,
        url=args.url,
        protocol=args.protocol,
        input_data=loaded.input_data,
        measurement_interval_ms=args.duration_ms,
        stability_percentage=args.stability_percentage,
    )
    levels = [LoadLevel("concurrency", float(value)) for value in args.concurrency]
    print(f"{loaded.model} at {args.url} ({args.protocol})")
    print(
        f"{'level':16} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'queue us':>9} {'compute us':>10}"
    )
    failed = 0

    def show(level: LoadLevel, outcome: Measurement | PerfAnalyzerError) -> None:
        nonlocal failed
        if isinstance(outcome, PerfAnalyzerError):
            failed += 1
            print(f"{level.label:16} failed: {str(outcome).splitlines()[0]}", file=sys.stderr)
            return
        server = outcome.server  # None where Triton's statistics were not read
        times = f"{server.queue_us:9.0f} {server.compute_us:10.0f}" if server else ""
        print(
            f"{level.label:16} {outcome.throughput_per_s:8.1f} {outcome.p(50) / 1000:8.1f} "
            f"{outcome.p(95) / 1000:8.1f} {outcome.p(99) / 1000:8.1f} {times}",
            flush=True,
        )

    sweep(settings, levels, out, loaded.model, on_done=show)
    print(f"perf_analyzer's CSVs and logs: {out}")
    return 1 if failed else 0


def dataset_command(args: argparse.Namespace) -> int:
    from inference_tools.perf import dataset

    path = dataset.write_json(dataset.triton_input_data(dataset.generate_texts()), args.output)
    print(f"wrote {path}")
    return 0
