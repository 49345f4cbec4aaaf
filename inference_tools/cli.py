"""`inference-tools`: the project's single command-line entry point.

Each command lives in `inference_tools/commands/`, in the module named after it: the parser
takes its name from the module (`commands/build_models.py` is `build-models`; a group of
commands is a package, `commands/autoscaling/<action>.py` is `inference-tools autoscaling
<action>`). Each module has `SUMMARY`, `DESCRIPTION`, `EXAMPLES` (the epilog),
`add_arguments(parser)` and `run(args)`, which returns the exit status; a group's package, or a
pod hook run as a command, has `register(subparsers)` instead (`command_parser.add_command`).
The modules parse options and call the feature packages (`perf/`, `publishing/`,
`autoscaling/`, ...), which hold the logic. Every parser is a `command_parser.CommandParser`:
the help format (defaults shown) and the global options live there. The lab's commands
(benchmark study, simulation, fault runs) are `python -m lab` from a checkout, never in this
package.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from inference_tools.command_parser import command_tree
from inference_tools.commands import (
    autoscaling,
    build_models,
    drain,
    models,
    perf,
    probe,
    publish,
    release_overlay,
    rollback,
    serve,
    validate_manifests,
)

COMMAND_MODULES = [
    serve,
    build_models,
    validate_manifests,
    release_overlay,
    models,
    publish,
    rollback,
    perf,
    autoscaling,
    drain,
    probe,
]

DESCRIPTION = """\
Tooling for a Triton Inference Server deployment: serve the model repository locally on the CPU,
build the model artefacts, publish and roll back models, calibrate autoscaling, render and
validate the manifests, drain and probe a server.

Run `inference-tools COMMAND --help` for the options of each command. The global options
(-v) go before or after the command.
"""


def build_parser() -> argparse.ArgumentParser:
    return command_tree("inference-tools", DESCRIPTION, COMMAND_MODULES)


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    """Run the command argv names; `parser`: another command tree run the same way (the lab's)."""
    args = (parser or build_parser()).parse_args(argv)
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
