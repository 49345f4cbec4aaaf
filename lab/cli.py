"""`python -m lab`: the benchmark study, the autoscaling simulation and loop, the fault runs.

The lab is not in the tooling's wheel: it runs from a checkout, through the Makefile (`make
perf`, `make perf-tune`, `make simulate`, `make autoscale-demo`, `make reliability`). Its
commands follow the tooling's rules (`inference_tools.cli`): one module per command in
`lab/commands/`, named after it, and they run the way the tooling's do.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from inference_tools import cli as tooling_cli
from inference_tools.command_parser import command_tree

from lab.commands import autoscaling, perf, reliability

PROG = "python -m lab"
COMMAND_MODULES = [perf, autoscaling, reliability]

DESCRIPTION = """\
The lab around the serving unit and the tooling: benchmark Triton against its baselines, simulate
the autoscaling policies and run the autoscaling loop on this machine, run the fault scenarios.

Run `python -m lab COMMAND --help` for the options of each command. The global options (-v) go
before or after the command.
"""


def build_parser() -> argparse.ArgumentParser:
    return command_tree(PROG, DESCRIPTION, COMMAND_MODULES)


def main(argv: Sequence[str] | None = None) -> int:
    return tooling_cli.main(argv, build_parser())
