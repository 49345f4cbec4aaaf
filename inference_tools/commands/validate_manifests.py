"""`inference-tools validate-manifests`: render every overlay and validate it offline."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from inference_tools.manifests import validation
from inference_tools.paths import KUSTOMIZE_DIR

SUMMARY = "render every kustomize overlay and validate it offline (schemas, CRDs, checkov)"
DESCRIPTION = validation.__doc__
EXAMPLES = """\
Examples:
  inference-tools validate-manifests          # ./kustomize, with the tools of make manifest-tools
  inference-tools validate-manifests --kustomize-dir /src/deploy/kustomize --checkov checkov
  inference-tools validate-manifests --release deploy/team-a   # a team's overlay, in its CI
"""


def run(args: argparse.Namespace) -> int:
    if args.release:
        report = validation.validate_releases(args.release, args.crd_validation_dir)
    else:
        with tempfile.TemporaryDirectory(prefix="validate-manifests-") as work:
            report = validation.validate_all(
                Path(work), args.kustomize_dir, args.checkov, args.crd_validation_dir
            )
    for check, problems in report.problems.items():
        print(f"{'FAIL' if problems else 'ok  '} {check}")
        for problem in problems:
            print(f"     {problem}")
    return 0 if report.ok else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kustomize-dir",
        type=Path,
        default=KUSTOMIZE_DIR,
        help="folder with base/, components/ and overlays/",
    )
    parser.add_argument(
        "--checkov",
        type=Path,
        default=validation.CHECKOV,
        help="checkov executable; checkov on PATH where it is absent",
    )
    parser.add_argument(
        "--crd-validation-dir",
        type=Path,
        default=validation.CRD_VALIDATION_DIR,
        help="folder of validate.mjs with the CRD models installed beside it by `npm ci` "
        "(`make manifest-tools`); the default is the copy in this package",
    )
    parser.add_argument(
        "--release",
        type=Path,
        action="append",
        default=[],
        metavar="OVERLAY",
        help="validate this team's overlay instead (repeatable): schemas, CRDs, and that its "
        "autoscaler reads the release's own series",
    )
