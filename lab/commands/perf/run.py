"""`python -m lab perf run`: measure Triton and its baselines, then write the report."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from inference_tools.commands.options import (
    add_measured_model,
    add_model_repository,
    add_server_url,
    comma_separated_ints,
)
from inference_tools.paths import RESULTS_DIR

from lab.commands.perf.local_servers import prepare_local_servers
from lab.commands.perf.report import print_report

DEFAULT_OUT = RESULTS_DIR / "latest"

SUMMARY = "measure, then write the report"
DESCRIPTION = """\
Measure a model with perf_analyzer (concurrency sweep, constant and Poisson request rates,
server-side queue and compute per composing model): --model, else the repository's first
ensemble (text_embedding here). For the embedding ensemble, the same run measures on the same
machine the in-process pipeline and a FastAPI microservice around it. Writes results.csv,
breakdown.csv, report.md and two PNG plots into --out.
"""
EXAMPLES = """\
Examples:
  python -m lab perf run                              # starts a local server on free ports
  python -m lab perf run --url 127.0.0.1:8001 --protocol grpc
  python -m lab perf run --model digits               # another model, Triton alone
  python -m lab perf run --serving-path only          # the serving path alone (lookup encoder)
  python -m lab perf run --smoke --out /tmp/perf      # a short run that checks the plumbing
  python -m lab perf run --concurrency 1,8,32 --offered-fractions 0.5
"""


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_url(
        parser, help="Triton to measure (host:port of HTTP or gRPC); default: start a local server"
    )
    parser.add_argument(
        "--protocol",
        choices=("http", "grpc"),
        default="http",
        help="protocol perf_analyzer speaks to Triton; --url then names that protocol's port",
    )
    add_measured_model(
        parser, "; texts for a one-text input, perf_analyzer's generated data otherwise"
    )
    parser.add_argument(
        "--metrics-url",
        help="Triton's metrics endpoint for --collect-metrics (host:port/metrics); the local "
        "server's when the run starts one",
    )
    add_model_repository(
        parser,
        help="repository to serve locally (without --url) and to read the model's config from",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    parser.add_argument(
        "--duration-ms",
        type=int,
        default=4000,
        help="perf_analyzer measurement window per trial, in ms",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs of every perf_analyzer level (default 3); the targets are graded on their "
        "medians and the range is shown",
    )
    parser.add_argument(
        "--concurrency",
        type=comma_separated_ints,
        default=(1, 2, 4, 8, 16, 32),
        metavar="LEVELS",
        help="requests in flight at each level of the closed-loop sweep, comma-separated",
    )
    parser.add_argument(
        "--microservice-concurrency",
        type=comma_separated_ints,
        default=(1, 2, 4, 8),
        metavar="LEVELS",
        help="the levels of --concurrency at which the microservice is measured too",
    )
    parser.add_argument(
        "--offered-fractions",
        type=_floats,
        default=(0.3, 0.6, 0.9),
        metavar="FRACTIONS",
        help="fixed request rates, as fractions of the microservice's capacity, comma-separated "
        "(each at constant and at Poisson arrivals)",
    )
    parser.add_argument(
        "--no-baselines",
        action="store_true",
        help="measure Triton only (the default when --url is not on this machine)",
    )
    parser.add_argument(
        "--serving-path",
        choices=("include", "only", "skip"),
        default="include",
        help="the serving path alone, with the encoder swapped for a near-zero-cost lookup "
        "graph: texts/s per CPU core for 1- and 64-text requests over HTTP and gRPC. "
        "'include' runs it after the rest where the run starts the local server, "
        "'only' runs nothing else, 'skip' leaves it out",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a short run (about a minute) that exercises every part; its numbers mean little",
    )


def _is_local(url: str | None) -> bool:
    return url is None or url.split(":")[0] in ("127.0.0.1", "localhost", "[::1]")


def run(args: argparse.Namespace) -> int:
    from lab.perf.suite import REPEATS, SuiteOptions, run_suite, smoke

    options = SuiteOptions(
        out_dir=args.out.resolve(),
        model_repository=args.model_repository.resolve(),
        url=args.url,
        model=args.model,
        protocol=args.protocol,
        metrics_url=args.metrics_url,
        concurrency=args.concurrency,
        microservice_concurrency=args.microservice_concurrency,
        offered_fractions=args.offered_fractions,
        measurement_interval_ms=args.duration_ms,
        repeats=max(1, args.repeats or REPEATS),
        baselines=not args.no_baselines and _is_local(args.url),
        serving_path=args.serving_path,
        command=shlex.join(["python", "-m", "lab", *sys.argv[1:]]),
    )
    if args.serving_path == "only" and args.url:
        print(
            "error: --serving-path only serves its own copy of the repository with a lookup "
            "encoder; leave out --url",
            file=sys.stderr,
        )
        return 2
    if args.smoke:
        options = smoke(options)
    prepare_local_servers(args.model_repository)
    report = run_suite(options)
    print_report(report)
    return 0
