"""`inference-tools drain` and `inference-tools probe`: the pod hooks, run from the tooling.

The hooks themselves (`pod_hooks.drain`, `pod_hooks.health_probe`) are a stand-alone unit that the
image runs as `triton-drain` and `triton-probe`; these commands give them the same options.
"""

from __future__ import annotations

import argparse

from pod_hooks import drain, health_probe

DRAIN_EXAMPLES = """\
Examples:
  inference-tools drain --propagation-seconds 0 --server-pid 0   # a local server on 8000/8002
  inference-tools drain --http-url http://127.0.0.1:9000 \\
      --metrics-url http://127.0.0.1:9002/metrics --deadline-seconds 60
"""
PROBE_EXAMPLES = """\
Examples:
  inference-tools probe --check-ready                 # readiness of the server on 8000
  inference-tools probe --url http://127.0.0.1:9000 --model text_embedding --timeout-seconds 5
"""


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, module, help_, examples in (
        (
            "drain",
            drain,
            "wait until a Triton server has no request in flight (run before stopping it)",
            DRAIN_EXAMPLES,
        ),
        (
            "probe",
            health_probe,
            "readiness/liveness check with a canary inference request (exit 0: healthy)",
            PROBE_EXAMPLES,
        ),
    ):
        parser = subparsers.add_parser(
            name, help=help_, description=module.__doc__, epilog=examples
        )
        module.add_arguments(parser)
        parser.set_defaults(func=module.run)
