"""`inference-tools`: the project's single command-line entry point.

Each command lives in `inference_tools/commands/`, in a module named after it (a group of
commands in a package: `commands/autoscaling/<action>.py` is `inference-tools autoscaling
<action>`). Each exposes `register(subparsers)`; the parser it adds sets `func`, which receives
the parsed arguments and returns the exit status, and has an epilog of examples. The modules
parse options and call the feature packages (`perf/`, `publishing/`, `autoscaling/`, ...), which
hold the logic. Every parser is a `command_parser.CommandParser`: the help format (defaults
shown) and the global options live there.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from inference_tools.command_parser import CommandParser
from inference_tools.commands import (
    autoscaling,
    build_models,
    models,
    perf,
    pod_hooks,
    publish,
    reliability,
    serve,
    validate_manifests,
)

COMMAND_MODULES = [
    serve,
    build_models,
    validate_manifests,
    models,
    publish,
    perf,
    autoscaling,
    reliability,
    pod_hooks,
]

DESCRIPTION = """\
Tooling for a Triton Inference Server deployment: serve the model repository locally on the CPU,
build the model artefacts, publish models, benchmark, and plan autoscaling.

Run `inference-tools COMMAND --help` for the options of each command. The global options
(-v) go before or after the command.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser(prog="inference-tools", description=DESCRIPTION, top_level=True)
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
