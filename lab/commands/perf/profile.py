"""`python -m lab perf profile`: where the time goes, in Triton and in the microservice."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from inference_tools.commands.options import add_model_repository, comma_separated_ints
from inference_tools.paths import RESULTS_DIR

from lab.commands.perf.local_servers import prepare_local_servers

DEFAULT_PROFILE_OUT = RESULTS_DIR / "where-time-goes"

SUMMARY = "profile Triton, the FastAPI microservice and the model alone under the same load"
DESCRIPTION = """\
Serve the repository with Triton and with the FastAPI microservice of `perf run`, and drive each
with perf_analyzer (the benchmark's data set, one text per request) at every concurrency and
protocol while `perf record` samples the cores. Beside them, the served encoder's sessions run
in this process with no server (one caller per instance). Writes report.md: texts/s, latency,
and CPU milliseconds per text by process (server, each backend stub, microservice, load
generator) and by what ran (ONNX Runtime, Python, Triton's core, the kernel), with Triton's
statistics per model and stage; runs.json and cpu_per_text.csv hold every run.
Needs `perf` (make system-deps installs Debian's linux-perf) and root or perf_event_paranoid
of 0 or lower for system-wide sampling.
"""
EXAMPLES = """\
Examples:
  python -m lab perf profile                        # c1 and c8, gRPC and HTTP, 3 runs each
  python -m lab perf profile --concurrency 1 --protocols grpc --repeats 1 --window-ms 2000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--concurrency",
        type=comma_separated_ints,
        default=(1, 8),
        metavar="LEVELS",
        help="requests in flight, comma-separated: one client, and enough to saturate the server",
    )
    parser.add_argument(
        "--protocols",
        default="grpc,http",
        help="Triton's protocols, comma-separated (the microservice speaks HTTP JSON)",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs of every case, interleaved")
    parser.add_argument(
        "--window-ms", type=int, default=4000, help="perf_analyzer measurement window, in ms"
    )
    add_model_repository(parser, help="repository to serve (its text-embedding ensemble)")
    parser.add_argument("--out", type=Path, default=DEFAULT_PROFILE_OUT, help="results folder")


def run(args: argparse.Namespace) -> int:
    from lab.perf.cpu_profile import ProfilerMissing
    from lab.perf.suite import Progress
    from lab.perf.where_time_goes import Options, WhereTimeGoes

    protocols = tuple(p.strip() for p in args.protocols.split(",") if p.strip())
    unknown = [p for p in protocols if p not in ("grpc", "http")]
    if unknown or not protocols:
        print(f"error: --protocols takes grpc and/or http, not {args.protocols!r}", file=sys.stderr)
        return 2
    prepare_local_servers(args.model_repository)
    profile = WhereTimeGoes(
        Options(
            out_dir=args.out.resolve(),
            model_repository=args.model_repository.resolve(),
            concurrency=args.concurrency,
            protocols=protocols,
            window_ms=args.window_ms,
            repeats=args.repeats,
            command=shlex.join(["python", "-m", "lab", "perf", "profile", *sys.argv[3:]]),
        )
    )
    progress = Progress(profile.cases())
    try:
        report = profile.run(progress.step)
    except ProfilerMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    finally:
        progress.close()
    print(report.read_text())
    return 0
