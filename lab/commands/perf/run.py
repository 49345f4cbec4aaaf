"""`python -m lab perf`: benchmark the served pipeline against its baselines; write the report."""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

from inference_tools.commands.options import add_measured_model, add_model_repository
from inference_tools.paths import RESULTS_DIR
from inference_tools.repository_builds import build_if_default_repository

DEFAULT_OUT = RESULTS_DIR / "latest"
DEFAULT_TUNING_OUT = RESULTS_DIR / "tuning"

DESCRIPTION = """\
Benchmark a served model with perf_analyzer, next to the baselines it is compared with:

  run      measure, then write the report (results.csv, breakdown.csv, report.md, plots)
  tune     compare encoder instance counts and thread settings, served side by side
  report   write the report again from an existing results folder

Run `python -m lab perf ACTION --help` for the options of each.
"""

RUN_HELP = """\
Measure a model with perf_analyzer (concurrency sweep, constant and Poisson request rates,
server-side queue and compute per composing model): --model, else the repository's first
ensemble (text_embedding here). For the embedding ensemble, the same run measures on the same
machine the in-process pipeline and a FastAPI microservice around it. Writes results.csv,
breakdown.csv, report.md and two PNG plots into --out.
"""
RUN_EXAMPLES = """\
Examples:
  python -m lab perf run                              # starts a local server on free ports
  python -m lab perf run --url 127.0.0.1:8001 --protocol grpc
  python -m lab perf run --model digits               # another model, Triton alone
  python -m lab perf run --serving-path only          # the serving path alone (lookup encoder)
  python -m lab perf run --smoke --out /tmp/perf      # a short run that checks the plumbing
  python -m lab perf run --concurrency 1,8,32 --offered-fractions 0.5
"""

TUNE_HELP = """\
Serve the ensemble once per encoder variant (INSTANCESxTHREADS: instance_group count and ONNX
Runtime intra_op_thread_count of minilm, nothing else changed), all at once on free ports, and
measure them in turn, round after round, next to the in-process floor. Writes tuning.md (medians
and the two ratios of `perf run` that these settings move) and tuning.csv (every sample).
Run it on the hardware you deploy to, then copy the winner into minilm's config.pbtxt.
"""
TUNE_EXAMPLES = """\
Examples:
  python -m lab perf tune                                  # defaults from the CPU count
  python -m lab perf tune --variants 16x1,4x4,2x8 --rounds 3
"""

REPORT_HELP = """\
Write report.md, results.csv, breakdown.csv and the plots again from the measurements under
RESULTS/raw: a folder that `perf run` wrote, or one unpacked from the CSVs the Kubernetes perf
Job prints (kustomize/components/perf-job/README.md).
"""
REPORT_EXAMPLES = """\
Examples:
  python -m lab perf report perf/results/latest
  python -m lab perf report perf/results/cluster/pod  # from the perf Job's CSVs only
"""


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(part) for part in text.split(",") if part.strip())


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "perf",
        help="benchmark Triton against the in-process and microservice baselines",
        description=DESCRIPTION,
    )
    commands = parser.add_subparsers(dest="perf_command", metavar="ACTION", required=True)

    run = commands.add_parser(
        "run", help="measure, then write the report", description=RUN_HELP, epilog=RUN_EXAMPLES
    )
    run.add_argument(
        "--url",
        help="Triton to measure (host:port of HTTP or gRPC); default: start a local server",
    )
    run.add_argument(
        "--protocol",
        choices=("http", "grpc"),
        default="http",
        help="protocol perf_analyzer speaks to Triton; --url then names that protocol's port",
    )
    add_measured_model(
        run, "; texts for a one-text input, perf_analyzer's generated data otherwise"
    )
    run.add_argument(
        "--metrics-url",
        help="Triton's metrics endpoint for --collect-metrics (host:port/metrics); the local "
        "server's when the run starts one",
    )
    add_model_repository(
        run, help="repository to serve locally (without --url) and to read the model's config from"
    )
    run.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results folder")
    run.add_argument(
        "--duration-ms",
        type=int,
        default=4000,
        help="perf_analyzer measurement window per trial, in ms",
    )
    run.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="runs of every perf_analyzer level (default 3); the targets are graded on their "
        "medians and the range is shown",
    )
    run.add_argument(
        "--concurrency",
        type=_ints,
        default=(1, 2, 4, 8, 16, 32),
        metavar="LEVELS",
        help="requests in flight at each level of the closed-loop sweep, comma-separated",
    )
    run.add_argument(
        "--microservice-concurrency",
        type=_ints,
        default=(1, 2, 4, 8),
        metavar="LEVELS",
        help="the levels of --concurrency at which the microservice is measured too",
    )
    run.add_argument(
        "--offered-fractions",
        type=_floats,
        default=(0.3, 0.6, 0.9),
        metavar="FRACTIONS",
        help="fixed request rates, as fractions of the microservice's capacity, comma-separated "
        "(each at constant and at Poisson arrivals)",
    )
    run.add_argument(
        "--no-baselines",
        action="store_true",
        help="measure Triton only (the default when --url is not on this machine)",
    )
    run.add_argument(
        "--serving-path",
        choices=("include", "only", "skip"),
        default="include",
        help="the serving path alone, with the encoder swapped for a near-zero-cost lookup "
        "graph: texts/s per CPU core for 1- and 64-text requests over HTTP and gRPC. "
        "'include' runs it after the rest where the run starts the local server, "
        "'only' runs nothing else, 'skip' leaves it out",
    )
    run.add_argument(
        "--smoke",
        action="store_true",
        help="a short run (about a minute) that exercises every part; its numbers mean little",
    )
    run.set_defaults(func=run_command)

    tune = commands.add_parser(
        "tune",
        help="compare encoder instance counts and thread settings, served side by side",
        description=TUNE_HELP,
        epilog=TUNE_EXAMPLES,
    )
    tune.add_argument(
        "--variants",
        default=None,
        help="comma-separated INSTANCESxTHREADS of the encoder, e.g. 2x1,1x2 "
        "(default: one thread per core, one instance with every core, and two halves)",
    )
    tune.add_argument(
        "--concurrency",
        type=_ints,
        default=(1, 16),
        metavar="LEVELS",
        help="requests in flight at which each variant is measured, comma-separated",
    )
    tune.add_argument("--rounds", type=int, default=2, help="measurements of every variant")
    tune.add_argument(
        "--duration-ms", type=int, default=4000, help="perf_analyzer measurement window, in ms"
    )
    add_model_repository(tune, help="repository whose ensemble each variant serves")
    tune.add_argument("--out", type=Path, default=DEFAULT_TUNING_OUT, help="results folder")
    tune.set_defaults(func=tune_command)

    report = commands.add_parser(
        "report",
        help="write the report of an existing results folder",
        description=REPORT_HELP,
        epilog=REPORT_EXAMPLES,
    )
    report.add_argument(
        "results", type=Path, help="results folder; its raw/ holds the measurements"
    )
    report.set_defaults(func=report_command)


def _is_local(url: str | None) -> bool:
    return url is None or url.split(":")[0] in ("127.0.0.1", "localhost", "[::1]")


def _prepare_local_servers(model_repository: Path) -> None:
    """Build the project's model artefacts if they are what will be served, and make SIGTERM
    unwind (SystemExit) so that a stopped run still stops the servers it started."""
    build_if_default_repository(model_repository)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))


def run_command(args: argparse.Namespace) -> int:
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
    _prepare_local_servers(args.model_repository)
    report = run_suite(options)
    _print_report(report)
    return 0


def _print_report(report: Any) -> None:
    """Where the report is, and each target's value (with its runs' range) and verdict."""
    print(f"report: {report.markdown}")
    for ratio in report.ratios:
        print(
            f"  {ratio.title}: {ratio.value_text} (target {ratio.target_text}): "
            f"{ratio.verdict_text.replace('**', '')}"
        )


def tune_command(args: argparse.Namespace) -> int:
    from lab.perf.tuning import (
        TUNING_MD,
        TuningOptions,
        Variant,
        default_variants,
        run_tuning,
    )

    try:
        variants = (
            [Variant.parse(part) for part in args.variants.split(",") if part.strip()]
            if args.variants
            else default_variants()
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _prepare_local_servers(args.model_repository)
    out = args.out.resolve()
    run_tuning(
        TuningOptions(
            out_dir=out,
            model_repository=args.model_repository.resolve(),
            variants=tuple(dict.fromkeys(variants)),
            concurrency=args.concurrency,
            rounds=args.rounds,
            measurement_interval_ms=args.duration_ms,
        )
    )
    print((out / TUNING_MD).read_text())
    return 0


def report_command(args: argparse.Namespace) -> int:
    from lab.perf.report import write_report

    _print_report(write_report(args.results))
    return 0
