"""`python -m lab perf tune`: encoder instance counts and threads, served side by side."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_tools.commands.options import add_model_repository, comma_separated_ints
from inference_tools.paths import RESULTS_DIR

from lab.commands.perf.local_servers import prepare_local_servers

DEFAULT_TUNING_OUT = RESULTS_DIR / "tuning"

SUMMARY = "compare encoder instance counts and thread settings, served side by side"
DESCRIPTION = """\
Serve the ensemble once per encoder variant (INSTANCESxTHREADS: instance_group count and ONNX
Runtime intra_op_thread_count of minilm, nothing else changed), all at once on free ports, and
measure them in turn, round after round, next to the in-process floor. Writes tuning.md (medians
and the two ratios of `perf run` that these settings move) and tuning.csv (every sample).
Run it on the hardware you deploy to, then copy the winner into minilm's config.pbtxt.
"""
EXAMPLES = """\
Examples:
  python -m lab perf tune                                  # defaults from the CPU count
  python -m lab perf tune --variants 16x1,4x4,2x8 --rounds 3
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--variants",
        default=None,
        help="comma-separated INSTANCESxTHREADS of the encoder, e.g. 2x1,1x2 "
        "(default: one thread per core, one instance with every core, and two halves)",
    )
    parser.add_argument(
        "--concurrency",
        type=comma_separated_ints,
        default=(1, 16),
        metavar="LEVELS",
        help="requests in flight at which each variant is measured, comma-separated",
    )
    parser.add_argument("--rounds", type=int, default=2, help="measurements of every variant")
    parser.add_argument(
        "--duration-ms", type=int, default=4000, help="perf_analyzer measurement window, in ms"
    )
    add_model_repository(parser, help="repository whose ensemble each variant serves")
    parser.add_argument("--out", type=Path, default=DEFAULT_TUNING_OUT, help="results folder")


def run(args: argparse.Namespace) -> int:
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
    prepare_local_servers(args.model_repository)
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
