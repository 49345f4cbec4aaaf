"""`python -m lab perf report`: the report again, from a results folder's measurements."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

SUMMARY = "write the report of an existing results folder"
DESCRIPTION = """\
Write report.md, results.csv, breakdown.csv and the plots again from the measurements under
RESULTS/raw: a folder that `perf run` wrote, or one unpacked from the CSVs the Kubernetes perf
Job prints (kustomize/components/perf-job/README.md).
"""
EXAMPLES = """\
Examples:
  python -m lab perf report perf/results/latest
  python -m lab perf report perf/results/cluster/pod  # from the perf Job's CSVs only
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", type=Path, help="results folder; its raw/ holds the measurements"
    )


def print_report(report: Any) -> None:
    """Where the report is, and each target's value (with its runs' range) and verdict."""
    print(f"report: {report.markdown}")
    for ratio in report.ratios:
        print(
            f"  {ratio.title}: {ratio.value_text} (target {ratio.target_text}): "
            f"{ratio.verdict_text.replace('**', '')}"
        )


def run(args: argparse.Namespace) -> int:
    from lab.perf.report import write_report

    print_report(write_report(args.results))
    return 0
