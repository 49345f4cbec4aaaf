"""`inference-tools rollback`: serve an earlier published version of a model again."""

from __future__ import annotations

import argparse

from inference_tools.commands.rollout_options import (
    add_server_options,
    admin_access,
    open_store,
    print_serving,
    resolve_endpoints,
)
from inference_tools.publishing.publisher import rollback

SUMMARY = "serve an earlier version of a published model again"
DESCRIPTION = """\
Serve an earlier version of a model again (by default the highest one below the version served
now): the config's version_policy is written back in one step and every server reloads.
"""
EXAMPLES = """\
Examples:
  inference-tools rollback scorer --store s3://models/prod --kube-deployment triton
  inference-tools rollback minilm --to-version 1 --store .work/model-store \\
      --triton-url 127.0.0.1:8000
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME", help="the published model's name in the store")
    parser.add_argument(
        "--to-version",
        type=int,
        help="version to serve (default: the highest one below the version served now)",
    )
    add_server_options(parser)


def run(args: argparse.Namespace) -> int:
    store = open_store(args.store)
    endpoints, skipped = resolve_endpoints(args)
    result = rollback(
        args.name,
        store,
        endpoints,
        to_version=args.to_version,
        admin=admin_access(args),
        timeout_s=args.timeout,
    )
    print(f"{result.name}: version {result.to_version} serves (was {result.from_versions})")
    print_serving(result.serving, skipped)
    return 0
