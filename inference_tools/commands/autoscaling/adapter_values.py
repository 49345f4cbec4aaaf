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


SUMMARY = "print prometheus-adapter Helm values with an overlay's custom-metrics rules"
DESCRIPTION = f"""\
Print values for the prometheus-community/prometheus-adapter Helm chart with the custom-metrics
rules of an overlay (under rules.custom). The overlay renders the same rules as the ConfigMap
{rendered_settings.ADAPTER_CONFIG_MAP}, which stays inert in the application namespace:
prometheus-adapter's own release must carry them for the HPA to get its metrics.
"""
EXAMPLES = """\
Example:
  inference-tools autoscaling adapter-values kustomize/overlays/gpu-hpa > adapter-values.yaml
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overlay", type=Path, help="an overlay folder with components/autoscaling-hpa"
    )
