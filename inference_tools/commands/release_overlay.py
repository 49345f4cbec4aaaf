"""`inference-tools release-overlay`: write a team's overlay of a shipped overlay, rendered and
checked before it is handed over."""

from __future__ import annotations

import argparse
from pathlib import Path

from inference_tools.manifests import release_overlay
from inference_tools.manifests.render import render

SUMMARY = "write a team's overlay of a shipped overlay (namespace, prefix, release label)"
DESCRIPTION = release_overlay.__doc__
EXAMPLES = """\
The overlay is applied with `kubectl apply --server-side -k OUT`; a team's CI checks it with
`inference-tools validate-manifests --release OUT`.

Examples:
  inference-tools release-overlay --release team-a --namespace ml-serving \\
      --base 'github.com/example/repo//kustomize/overlays/cpu-keda?ref=v0.1.0' \\
      --image registry.example.com/team-a/models@sha256:3f1e... \\
      --model-repository /team-a/models --out deploy/team-a
  inference-tools release-overlay --release team-b --namespace ml-serving \\
      --base kustomize/overlays/cpu-hpa --shares-namespace --out deploy/team-b   # a second one
"""


def run(args: argparse.Namespace) -> int:
    release = release_overlay.Release(
        name=args.release,
        namespace=args.namespace,
        base=args.base,
        image=args.image,
        model_repository=args.model_repository,
        shares_namespace=args.shares_namespace,
    )
    base = render(args.base, "base")
    scaled_by_keda = bool(base.of_kind("ScaledObject"))
    written = release_overlay.write_overlay(release, args.out, base)
    rendered = render(args.out, args.release)
    problems = release_overlay.autoscaler_problems(rendered)
    for path in written:
        print(f"wrote {path}")
    print(f"rendered {len(rendered.resources)} resources in namespace {args.namespace}", end="")
    print(", KEDA queries follow the release" if scaled_by_keda else "")
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--release",
        required=True,
        help="the release's name: name prefix and app.kubernetes.io/instance",
    )
    parser.add_argument("--namespace", required=True, help="the namespace it is deployed into")
    parser.add_argument(
        "--base", required=True, help="a shipped overlay: a local path or a remote kustomize URL"
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the overlay in")
    parser.add_argument("--image", help="the team's serving image, REPOSITORY@sha256:... or :TAG")
    parser.add_argument(
        "--model-repository", help="MODEL_REPOSITORY inside the image (default: the base's)"
    )
    parser.add_argument(
        "--shares-namespace",
        action="store_true",
        help="another release already runs in the namespace: leave out the "
        "PrometheusRule, whose recording rules already cover every Service",
    )
