"""`inference-tools publish`: validate models, publish them to the store and roll them out."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference_tools.commands.rollout_options import (
    add_server_options,
    admin_access,
    open_store,
    print_serving,
    resolve_endpoints,
)
from inference_tools.publishing.publisher import publish
from inference_tools.publishing.sources import read_model_source

SUMMARY = "validate a model, publish it to the model store and roll it out"
DESCRIPTION = """\
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
EXAMPLES = """\
Examples:
  inference-tools publish model_repository/minilm --store .work/model-store \\
      --triton-url 127.0.0.1:8000
  inference-tools publish my_model.onnx --name scorer --store s3://models/prod \\
      --kube-deployment triton --kube-namespace inference
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
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
    add_server_options(parser)


def run(args: argparse.Namespace) -> int:
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
