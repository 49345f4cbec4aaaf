"""`inference-tools perf`: what a measurement of a served model sends, for the perf Job.

The benchmark study (`perf run`, `perf tune`, `perf report`) is the lab's: `python -m lab perf`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from inference_tools.paths import KUSTOMIZE_DIR

# The Kubernetes Job's copy: a ConfigMap can only take files from inside its kustomization.
PERF_JOB_INPUT_DATA = KUSTOMIZE_DIR / "components" / "perf-job" / "input_data.json"

DESCRIPTION = """\
Measure a served model with perf_analyzer (the perf Job, kustomize/components/perf-job):

  dataset  write the benchmark's texts as perf_analyzer --input-data JSON

Run `inference-tools perf ACTION --help` for the options of each. The benchmark study against
the in-process and microservice baselines runs from a checkout: `make perf`.
"""

DATASET_HELP = """\
Write the benchmark's texts as a perf_analyzer --input-data JSON file. The texts come from a
fixed seed, so the file is the same on every run; the default output is the copy the Kubernetes
perf Job mounts (a ConfigMap takes files from inside its kustomization only).
"""
DATASET_EXAMPLES = """\
Examples:
  inference-tools perf dataset                          # refresh the Kubernetes Job's data set
  inference-tools perf dataset /tmp/input_data.json
"""


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "perf",
        help="the perf Job's data set (the benchmark study: make perf)",
        description=DESCRIPTION,
    )
    commands = parser.add_subparsers(dest="perf_command", metavar="ACTION", required=True)
    data = commands.add_parser(
        "dataset",
        help="write the data set as perf_analyzer --input-data JSON (reproducible)",
        description=DATASET_HELP,
        epilog=DATASET_EXAMPLES,
    )
    data.add_argument(
        "output", type=Path, nargs="?", default=PERF_JOB_INPUT_DATA, help="JSON file to write"
    )
    data.set_defaults(func=dataset_command)


def dataset_command(args: argparse.Namespace) -> int:
    from inference_tools.perf import dataset

    path = dataset.write_json(dataset.triton_input_data(dataset.generate_texts()), args.output)
    print(f"wrote {path}")
    return 0
