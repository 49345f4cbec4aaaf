"""Options that more than one autoscaling action takes, declared once."""

from __future__ import annotations

import argparse


def add_scrape_interval(parser: argparse.ArgumentParser) -> None:
    """The local Prometheus that `calibrate` and `demo` start scrapes Triton this often."""
    parser.add_argument(
        "--scrape-interval",
        type=int,
        default=1,
        help="scrape interval of the local Prometheus, in seconds",
    )
