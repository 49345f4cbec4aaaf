"""`inference-tools probe`: the pod's readiness and liveness check, run from the tooling.

The probe itself (`pod_hooks.health_probe`) belongs to the serving unit, which the image runs as
`triton-probe`; this command gives it the same options.
"""

from __future__ import annotations

import argparse

from pod_hooks import health_probe

from inference_tools.command_parser import add_module_command

EXAMPLES = """\
Examples:
  inference-tools probe --check-ready                 # readiness of the server on 8000
  inference-tools probe --url http://127.0.0.1:9000 --model text_embedding --timeout-seconds 5
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    add_module_command(
        subparsers,
        "probe",
        health_probe,
        help="readiness/liveness check with a canary inference request (exit 0: healthy)",
        epilog=EXAMPLES,
    )
