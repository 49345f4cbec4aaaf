"""`inference-tools autoscaling ACTION`: plan and check autoscaling on Triton's queue metrics.

One module per action: `calibrate`, `adapter_values`. The simulation and the local loop are the
lab's (`python -m lab autoscaling simulate|demo`).
"""

from __future__ import annotations

import argparse

from inference_tools.command_parser import add_command_group
from inference_tools.commands.autoscaling import adapter_values, calibrate

ACTIONS = [calibrate, adapter_values]

DESCRIPTION = """\
Autoscaling on Triton's queue metrics and request rate:

  calibrate       measure where p95 latency crosses the objective, write the targets
  adapter-values  print prometheus-adapter Helm values with an overlay's rules

Run `inference-tools autoscaling ACTION --help` for the options of each.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    add_command_group(
        subparsers,
        "autoscaling",
        help="calibrate the scaling targets, print prometheus-adapter values",
        description=DESCRIPTION,
        modules=ACTIONS,
    )
