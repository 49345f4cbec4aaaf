"""`inference-tools autoscaling ACTION`: plan and check autoscaling on Triton's queue metrics.

One module per action: `calibrate`, `simulate`, `demo`, `adapter_values`.
"""

from __future__ import annotations

import argparse

from inference_tools.commands.autoscaling import adapter_values, calibrate, demo, simulate

ACTIONS = [calibrate, simulate, demo, adapter_values]

DESCRIPTION = """\
Autoscaling on Triton's queue metrics and request rate:

  calibrate       measure where p95 latency crosses the objective, write the targets
  simulate        compare scaling signals and policies on simulated traces (not measured)
  demo            run the whole autoscaling loop on this machine, with a timeline and a plot
  adapter-values  print prometheus-adapter Helm values with an overlay's rules

Run `inference-tools autoscaling ACTION --help` for the options of each.
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "autoscaling",
        help="calibrate targets, simulate the fleet, run the local loop, print adapter values",
        description=DESCRIPTION,
    )
    actions = parser.add_subparsers(dest="autoscaling_action", metavar="ACTION", required=True)
    for module in ACTIONS:
        module.register(actions)
