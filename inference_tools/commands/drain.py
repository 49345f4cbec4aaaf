"""`inference-tools drain`: the pod's preStop hook, run from the tooling.

The hook itself (`pod_hooks.drain`) belongs to the serving unit, which the image runs as
`triton-drain`; this command gives it the same options.
"""

from __future__ import annotations

import argparse

from pod_hooks import drain

from inference_tools.command_parser import add_module_command

EXAMPLES = """\
Examples:
  inference-tools drain --propagation-seconds 0 --server-pid 0   # a local server on 8000/8002
  inference-tools drain --http-url http://127.0.0.1:9000 \\
      --metrics-url http://127.0.0.1:9002/metrics --deadline-seconds 60
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    add_module_command(
        subparsers,
        "drain",
        drain,
        help="wait until a Triton server has no request in flight (run before stopping it)",
        epilog=EXAMPLES,
    )
