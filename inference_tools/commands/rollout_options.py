"""What `inference-tools publish` and `inference-tools rollback` share: the model store, the
servers to switch and the admin access to them, and the table of what serves afterwards."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from pod_hooks.model_roles import ADMIN_HEADER, ADMIN_KEY_ENV

from inference_tools.publishing.endpoints import HttpEndpoint, TritonEndpoint
from inference_tools.publishing.rollout import AdminAccess
from inference_tools.publishing.stores import LocalFolderStore, ModelStore


def add_server_options(parser: argparse.ArgumentParser) -> None:
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
        default=ADMIN_HEADER,
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


def open_store(spec: str) -> ModelStore:
    """The --store value as a store: `s3://...` the S3 store, anything else a local folder.

    Here rather than in publishing/stores.py, which s3_store.py builds on: no import cycle.
    """
    if spec.startswith("s3://"):
        # Imported here: boto3 costs `--help` a second.
        from inference_tools.publishing.s3_store import S3Store

        return S3Store(spec)
    return LocalFolderStore(Path(spec))
