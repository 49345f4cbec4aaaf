"""`inference-tools drain` and `inference-tools probe`: the pod hooks, run from the tooling.

The hooks themselves (`pod_hooks.drain`, `pod_hooks.health_probe`) are a stand-alone unit that the
image runs as `triton-drain` and `triton-probe`; these commands give them the same options.
"""

from __future__ import annotations

import argparse

from pod_hooks import drain, health_probe


def register(subparsers: argparse._SubParsersAction) -> None:
    for name, module, help_ in (
        (
            "drain",
            drain,
            "wait until a Triton server has no request in flight (run before stopping it)",
        ),
        (
            "probe",
            health_probe,
            "readiness/liveness check with a canary inference request (exit 0: healthy)",
        ),
    ):
        parser = subparsers.add_parser(
            name,
            help=help_,
            description=module.__doc__,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(parser)
        parser.set_defaults(func=module.run)
