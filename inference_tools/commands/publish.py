"""`inference-tools publish` and `inference-tools rollback`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from inference_tools.publishing.endpoints import HttpEndpoint, TritonEndpoint
from inference_tools.publishing.publisher import publish, rollback
from inference_tools.publishing.rollout import DEFAULT_ADMIN_HEADER, AdminAccess
from inference_tools.publishing.sources import read_model_source
from inference_tools.publishing.stores import open_store

ADMIN_KEY_ENV = "TRITON_ADMIN_KEY"

PUBLISH_HELP = """\
Publish one or more models to a Triton model store and switch every server to the new version.

Each MODEL is a model folder as in model_repository/ (config.pbtxt and version folders; the
highest version folder's files are published) or a bare .onnx file (its config is generated from
the graph). Before anything is written, the model is validated (name, config against Triton's
schema, ONNX graph against the config, Python model code, ensemble wiring) and loaded and
queried on a throwaway local CPU Triton. The new version is then uploaded where no server loads
it, verified, and made the served version by one write of the model's config.pbtxt
(version_policy); each server is asked to reload the model and must report the new version
READY and answer an inference. If any of that fails, everything is rolled back.

Servers must run with --model-control-mode=explicit. The repository API key (Triton's
--http-restricted-api header value) is read from $TRITON_ADMIN_KEY or --admin-key-file, never
from the command line. S3 credentials come from the standard AWS chain (AWS_* variables,
~/.aws, instance or pod roles).
"""
PUBLISH_EXAMPLES = """\
Examples:
  inference-tools publish model_repository/minilm --store .work/model-store \\
      --triton-url 127.0.0.1:8000
  inference-tools publish my_model.onnx --name scorer --store s3://models/prod \\
      --kube-deployment triton --kube-namespace inference
"""

ROLLBACK_HELP = """\
Serve an earlier version of a model again (by default the highest one below the version served
now): the config's version_policy is written back in one step and every server reloads.
"""
ROLLBACK_EXAMPLES = """\
Examples:
  inference-tools rollback scorer --store s3://models/prod --kube-deployment triton
  inference-tools rollback minilm --to-version 1 --store .work/model-store \\
      --triton-url 127.0.0.1:8000
"""


def _add_server_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        required=True,
        help="the model repository servers read: a folder, s3://bucket/prefix, or Triton's "
        "s3://http://host:port/bucket/prefix for an S3-compatible server",
    )
    servers = parser.add_argument_group("servers to switch (none: only the store is changed)")
    servers.add_argument(
        "--triton-url",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="HTTP address of a Triton server; repeat for several",
    )
    servers.add_argument(
        "--kube-deployment", help="switch every pod of this Triton Deployment (via the API server)"
    )
    servers.add_argument("--kube-namespace", default="inference", help="the Deployment's namespace")
    servers.add_argument("--kube-context", help="kubeconfig context (default: the current one)")
    servers.add_argument("--kube-port", default="8000", help="Triton's HTTP container port")
    servers.add_argument(
        "--admin-header",
        default=DEFAULT_ADMIN_HEADER,
        help="header of Triton's restricted repository API",
    )
    servers.add_argument(
        "--admin-key-file",
        type=Path,
        help=f"file holding that header's value (default: the value of ${ADMIN_KEY_ENV})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long a server may take to load a version",
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "publish",
        help="validate a model, publish it to the model store and roll it out",
        description=PUBLISH_HELP,
        epilog=PUBLISH_EXAMPLES,
    )
    parser.add_argument(
        "models",
        nargs="+",
        type=Path,
        metavar="MODEL",
        help="a model folder (config.pbtxt and version folders) or a bare .onnx file",
    )
    parser.add_argument("--name", help="model name (default: the config's name or the folder's)")
    parser.add_argument(
        "--version", type=int, help="version number (default: one above the highest stored)"
    )
    parser.add_argument(
        "--sample-input",
        type=Path,
        help="KServe v2 JSON request for the smoke inference (default: built from the config)",
    )
    parser.add_argument(
        "--no-smoke-test",
        action="store_true",
        help="skip loading the model on a local CPU Triton first (for GPU-only models)",
    )
    _add_server_options(parser)
    parser.set_defaults(func=run_publish)

    parser = subparsers.add_parser(
        "rollback",
        help="serve an earlier version of a published model again",
        description=ROLLBACK_HELP,
        epilog=ROLLBACK_EXAMPLES,
    )
    parser.add_argument("name", metavar="NAME", help="the published model's name in the store")
    parser.add_argument(
        "--to-version",
        type=int,
        help="version to serve (default: the highest one below the version served now)",
    )
    _add_server_options(parser)
    parser.set_defaults(func=run_rollback)


def admin_access(args: argparse.Namespace) -> AdminAccess:
    if args.admin_key_file is not None:
        value = args.admin_key_file.read_text().strip()
    else:
        value = os.environ.get(ADMIN_KEY_ENV) or None
    return AdminAccess(args.admin_header, value)


def resolve_endpoints(args: argparse.Namespace) -> tuple[dict[str, TritonEndpoint], list[str]]:
    """(servers to switch by label, pods found but not ready, which are left alone)."""
    endpoints: dict[str, TritonEndpoint] = {}
    for url in args.triton_url:
        endpoint = HttpEndpoint(url)
        endpoints[endpoint.label] = endpoint
    skipped: list[str] = []
    if args.kube_deployment:
        from inference_tools.publishing.kubernetes_replicas import (
            deployment_replicas,
            kubernetes_apis,
        )

        apps_api, core_api = kubernetes_apis(args.kube_context)
        replicas = deployment_replicas(
            apps_api, core_api, args.kube_namespace, args.kube_deployment, args.kube_port
        )
        if not replicas:
            raise RuntimeError(
                f"deployment/{args.kube_deployment} in {args.kube_namespace} has no pods"
            )
        for replica in replicas:
            if replica.ready:
                endpoints[replica.endpoint.label] = replica.endpoint
            else:
                skipped.append(f"pod/{replica.pod}")
    return endpoints, skipped


def print_serving(rows: list[tuple[str, str, str]], skipped: list[str]) -> None:
    if not rows and not skipped:
        print("no server was given: only the store changed")
        return
    width = max([len(r[0]) for r in rows] + [len(s) for s in skipped] + [6])
    print(f"{'server':<{width}}  model -> versions READY")
    for server, model, versions in rows:
        print(f"{server:<{width}}  {model} -> {versions}")
    for pod in skipped:
        print(f"{pod:<{width}}  not ready, not switched: it reads the store's config as it starts")


def run_publish(args: argparse.Namespace) -> int:
    if args.name and len(args.models) > 1:
        raise ValueError("--name applies to a single MODEL")
    sources = [read_model_source(path, args.name) for path in args.models]
    store = open_store(args.store)
    endpoints, skipped = resolve_endpoints(args)
    result = publish(
        sources,
        store,
        endpoints,
        version=args.version,
        sample_request_path=args.sample_input,
        smoke_test=not args.no_smoke_test,
        admin=admin_access(args),
        timeout_s=args.timeout,
    )
    published = ", ".join(f"{name} version {version}" for name, version in result.published)
    print(f"published {published} to {store.describe()}")
    print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings_s.items()))
    print_serving(result.serving, skipped)
    return 0


def run_rollback(args: argparse.Namespace) -> int:
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
