"""Options that more than one command takes, declared once (each command says in its help what
it does with the value)."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference_tools.paths import MODEL_REPOSITORY


def add_measured_model(parser: argparse.ArgumentParser, more: str = "") -> None:
    """`--model`: what a measurement loads, as `perf.measured_model` picks it."""
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


def add_server_url(parser: argparse.ArgumentParser, help: str, *, required: bool = False) -> None:
    """`--url`: the running Triton a command reads or measures instead of a local one."""
    parser.add_argument("--url", required=required, metavar="URL", help=help)


def comma_separated_ints(text: str) -> tuple[int, ...]:
    """An option's `1,4,16`: load levels, concurrency steps."""
    return tuple(int(part) for part in text.split(",") if part.strip())
