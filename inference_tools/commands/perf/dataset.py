"""`inference-tools perf dataset`: the benchmark's texts as perf_analyzer --input-data JSON."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference_tools.paths import KUSTOMIZE_DIR

# The Kubernetes Job's copy: a ConfigMap can only take files from inside its kustomization.
PERF_JOB_INPUT_DATA = KUSTOMIZE_DIR / "components" / "perf-job" / "input_data.json"

SUMMARY = "write the data set as perf_analyzer --input-data JSON (reproducible)"
DESCRIPTION = """\
Write the benchmark's texts as a perf_analyzer --input-data JSON file. The texts come from a
fixed seed, so the file is the same on every run; the default output is the copy the Kubernetes
perf Job mounts (a ConfigMap takes files from inside its kustomization only).
"""
EXAMPLES = """\
Examples:
  inference-tools perf dataset                          # refresh the Kubernetes Job's data set
  inference-tools perf dataset /tmp/input_data.json
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "output", type=Path, nargs="?", default=PERF_JOB_INPUT_DATA, help="JSON file to write"
    )


def run(args: argparse.Namespace) -> int:
    from inference_tools.perf import dataset

    path = dataset.write_json(dataset.triton_input_data(dataset.generate_texts()), args.output)
    print(f"wrote {path}")
    return 0
