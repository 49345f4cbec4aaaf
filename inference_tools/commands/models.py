"""`inference-tools models`: what the tooling derives from a model repository, for a person or a
script (which models clients call, which are ensembles and steps, each canary)."""

from __future__ import annotations

import argparse
import json
import os

from pod_hooks.model_roles import ADMIN_KEY_ENV, ModelRoles, roles_from_server

from inference_tools.commands.options import add_model_repository, add_server_url
from inference_tools.model_config import roles_from_folder

SUMMARY = "list entry models, ensembles and composing models of a repository or a server"
DESCRIPTION = """\
List the roles of the models in a repository folder (default) or on a running Triton (--url),
as the probe, the benchmarks, calibration and publishing derive them from the configs:

  entry models   models no ensemble calls: what clients send requests to (public)
  ensembles      configs with platform: "ensemble"
  composing      models some ensemble calls
  default target what `make perf` and `calibrate` load when no model is named

With --json, one object (add --canaries for each entry model's canary request). A server's
repository index and config APIs are restricted in the Deployment: the admin header's value
comes from TRITON_ADMIN_KEY.
"""
EXAMPLES = """\
Examples:
  inference-tools models                                  # the roles in model_repository/
  inference-tools models --json --canaries
  inference-tools models --url http://127.0.0.1:8000      # what a running server loaded
"""


def summary(roles: ModelRoles, canaries: bool) -> dict:
    document: dict = {
        "entry_models": list(roles.entry_models),
        "ensembles": list(roles.ensembles),
        "composing": list(roles.composing),
        "default_target": roles.default_measured_model(),
    }
    if canaries:
        document["canaries"] = {m: roles.canary_request(m) for m in roles.entry_models}
    return document


def run(args: argparse.Namespace) -> int:
    if args.url:
        roles = roles_from_server(args.url, os.environ.get(ADMIN_KEY_ENV))
    else:
        roles = roles_from_folder(args.model_repository)
    document = summary(roles, args.canaries)
    if args.json:
        print(json.dumps(document, indent=2))
        return 0
    for key in ("entry_models", "ensembles", "composing"):
        print(f"{key.replace('_', ' '):15} {' '.join(document[key]) or '-'}")
    print(f"{'default target':15} {document['default_target']}")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_repository(parser, help="repository folder to read (without --url)")
    add_server_url(parser, help="read a running Triton instead (http://host:port)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the table"
    )
    parser.add_argument(
        "--canaries",
        action="store_true",
        help="with --json: add each entry model's canary request (what the probe sends)",
    )
