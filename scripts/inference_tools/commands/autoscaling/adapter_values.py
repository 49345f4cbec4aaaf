"""`inference-tools autoscaling adapter-values OVERLAY`: prometheus-adapter Helm values from the
overlay."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from inference_tools.autoscaling import rendered_settings


def run(args: argparse.Namespace) -> int:
    values = rendered_settings.adapter_values(rendered_settings.render(args.overlay))
    sys.stdout.write(
        "# prometheus-community/prometheus-adapter values: the rules of "
        f"{args.overlay} (ConfigMap {rendered_settings.ADAPTER_CONFIG_MAP}).\n"
        + rendered_settings.dump_yaml(values)
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adapter-values",
        help="print prometheus-adapter Helm values with an overlay's custom-metrics rules",
    )
    parser.add_argument("overlay", type=Path, help="an overlay with components/autoscaling-hpa")
    parser.set_defaults(func=run)
