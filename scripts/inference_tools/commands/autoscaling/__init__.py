"""`inference-tools autoscaling ACTION`: plan and check autoscaling on Triton's queue metrics.

One module per action: `calibrate`, `simulate`, `demo`, `adapter_values`.
"""

from __future__ import annotations

import argparse

from inference_tools.commands.autoscaling import adapter_values, calibrate, demo, simulate

ACTIONS = [calibrate, simulate, demo, adapter_values]


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "autoscaling",
        help="calibrate targets, simulate the fleet, run the local loop, print adapter values",
        description="Autoscaling on Triton's queue metrics: `inference-tools autoscaling ACTION "
        "--help` for each action.",
    )
    actions = parser.add_subparsers(dest="autoscaling_action", metavar="ACTION", required=True)
    for module in ACTIONS:
        module.register(actions)
