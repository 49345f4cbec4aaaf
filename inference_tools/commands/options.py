"""Options that more than one command takes, declared once (each command says in its help what
it does with the value)."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference_tools.paths import MODEL_REPOSITORY


def add_measured_model(parser: argparse.ArgumentParser, more: str = "") -> None:
    """`--model`: what a measurement loads (perf_analyzer's target), as `perf.targets` picks it."""
    parser.add_argument(
        "--model",
        help="model to load (default: the repository's first ensemble clients call, else its "
        f"first model){more}",
    )


def add_model_repository(parser: argparse.ArgumentParser, help: str) -> None:
    """`--model-repository DIR`, `model_repository/` of the current folder by default."""
    parser.add_argument(
        "--model-repository", type=Path, default=MODEL_REPOSITORY, metavar="DIR", help=help
    )
