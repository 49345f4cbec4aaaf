"""`inference-tools perf measure`: measure a running server with perf_analyzer, level by level."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_tools.commands.options import (
    add_measured_model,
    add_model_repository,
    add_server_url,
    comma_separated_ints,
)
from inference_tools.paths import RESULTS_DIR

DEFAULT_MEASURE_OUT = RESULTS_DIR / "measure"

SUMMARY = "measure a running Triton at each load level"
DESCRIPTION = """\
Measure a running Triton with perf_analyzer, one run per concurrency level: throughput, client
latency percentiles, and the server's queue and compute time per request. The model is --model,
else the repository's first ensemble clients call; a model taking one text per request gets the
benchmark's texts, any other perf_analyzer's generated data. perf_analyzer's CSVs go into --out.
"""
EXAMPLES = """\
Examples:
  inference-tools perf measure --url 127.0.0.1:8000
  inference-tools perf measure --url 10.0.0.7:8001 --protocol grpc --concurrency 1,8,32
  inference-tools perf measure --url 127.0.0.1:8000 --duration-ms 8000 --stability-percentage 50
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_url(parser, help="Triton's HTTP or gRPC host:port", required=True)
    parser.add_argument(
        "--protocol",
        choices=("http", "grpc"),
        default="http",
        help="the protocol --url speaks",
    )
    add_measured_model(parser)
    add_model_repository(parser, help="the served repository's configs: the model and its inputs")
    parser.add_argument(
        "--concurrency",
        type=comma_separated_ints,
        default=(1, 4, 16),
        metavar="LEVELS",
        help="requests in flight at each level, comma-separated",
    )
    parser.add_argument(
        "--duration-ms", type=int, default=4000, help="perf_analyzer measurement window, in ms"
    )
    parser.add_argument(
        "--stability-percentage",
        type=float,
        default=30.0,
        help="perf_analyzer's bound on how much the last windows may differ; a busy machine "
        "needs more (or longer windows)",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_MEASURE_OUT, help="folder for perf_analyzer's CSVs"
    )


def run(args: argparse.Namespace) -> int:
    from inference_tools.perf.measured_model import choose_measured_model
    from inference_tools.perf.perf_analyzer import (
        LoadLevel,
        Measurement,
        PerfAnalyzerError,
        PerfAnalyzerSettings,
        sweep,
    )

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    loaded = choose_measured_model(args.model_repository, args.model, out / "input-data.json")
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
