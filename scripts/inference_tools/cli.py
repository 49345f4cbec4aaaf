"""`inference-tools`: the project's single command-line entry point.

Each subcommand lives in its own module that exposes `register(subparsers)`; the parser it adds
sets `func`, which receives the parsed arguments and returns the exit status.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from inference_tools import (
    build_models_command,
    drain,
    health_probe,
    manifests,
    models_command,
    serve_command,
)
from inference_tools.autoscaling import (
    adapter_values_command,
    calibrate_command,
    demo_command,
    simulate_command,
)
from inference_tools.benchmarking import command as perf_command
from inference_tools.publishing import command as publishing_command
from inference_tools.reliability import command as reliability_command

COMMAND_MODULES = [
    adapter_values_command,
    build_models_command,
    calibrate_command,
    demo_command,
    drain,
    health_probe,
    manifests,
    models_command,
    perf_command,
    publishing_command,
    reliability_command,
    serve_command,
    simulate_command,
]

DESCRIPTION = """\
Tooling for a Triton Inference Server deployment: serve the model repository locally on the CPU,
build the model artefacts, publish models, benchmark, and plan autoscaling.

Run `inference-tools COMMAND --help` for the options of each command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inference-tools",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as error:  # one clear line for users; --verbose keeps the traceback
        if args.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
