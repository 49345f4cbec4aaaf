"""Options that more than one command takes, declared once (each command says in its help what
it does with the value)."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference_tools.paths import MODEL_REPOSITORY


def add_model_repository(parser: argparse.ArgumentParser, help: str) -> None:
    """`--model-repository DIR`, `model_repository/` of the current folder by default."""
    parser.add_argument(
        "--model-repository", type=Path, default=MODEL_REPOSITORY, metavar="DIR", help=help
    )
