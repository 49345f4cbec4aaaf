"""`python -m lab autoscaling ACTION`: the autoscaling simulation and the local loop.

One module per action: `simulate`, `demo`. The product's actions (`calibrate`,
`adapter-values`) are `inference-tools autoscaling ACTION`.
"""

from __future__ import annotations

import argparse

from inference_tools.command_parser import add_command_group

from lab.commands.autoscaling import demo, simulate

ACTIONS = [simulate, demo]

DESCRIPTION = """\
Autoscaling studied on this machine:

  simulate  compare scaling signals and policies on simulated traces (not measured)
  demo      run the whole autoscaling loop on this machine, with a timeline and a plot

Run `python -m lab autoscaling ACTION --help` for the options of each.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    add_command_group(
        subparsers,
        "autoscaling",
        help="simulate the fleet, run the local autoscaling loop",
        description=DESCRIPTION,
        modules=ACTIONS,
    )
