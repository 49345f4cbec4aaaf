"""A team's release of the shipped manifests: the overlay that gives it a namespace, a name
prefix and an `app.kubernetes.io/instance` of its own, and the check that the release's
autoscaler reads the release's own series.

KEDA's queries name the Service in PromQL strings (`namespace="...",service="..."`). The
`autoscaling-keda` component fills them in with replacements, but kustomize runs a component's
replacements before the `namespace:` and `namePrefix:` of an overlay on top of it, so a team's
overlay must run the same replacements again, after its own renames. Forgetting it raises no
error anywhere: the ScaledObject reads another release's series, or none. `write_overlay`
writes them whenever the base renders a ScaledObject, and `autoscaler_problems` finds a
rendered release whose queries name a Service it does not select.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inference_tools.manifests.render import Render, Resource

KUSTOMIZATION = "kustomization.yaml"
QUERY_NAMES_FILE = "keda-query-names.yaml"
# The query's quoted label values, split on '"': index 1 is the namespace, 3 the Service.
QUERY_FIELDS = {"namespace": 1, "name": 3}
SERVING_IMAGE = "ghcr.io/example/scalable-inference-server"
MATCHER = re.compile(r'(\w+)="([^"]*)"')


def query_replacements(service: str = "triton", scaled_object: str = "triton") -> list[Resource]:
    """The replacements that copy the Service's namespace and name into every KEDA query
    (the same ones `kustomize/components/autoscaling-keda` runs; a test holds them equal)."""
    return [
        {
            "source": {"kind": "Service", "name": service, "fieldPath": f"metadata.{field}"},
            "targets": [
                {
                    "select": {"group": "keda.sh", "kind": "ScaledObject", "name": scaled_object},
                    "fieldPaths": ["spec.triggers.*.metadata.query"],
                    "options": {"delimiter": '"', "index": index},
                }
            ],
        }
        for field, index in QUERY_FIELDS.items()
    ]


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str
    # A kustomize base: a path, or a remote one (github.com/...//kustomize/overlays/cpu-keda?ref=).
    base: str
    image: str | None = None
    model_repository: str | None = None
    # A second release in a namespace that already has one: its PrometheusRule would record the
    # same series twice, so it is left out (the first release's rules cover every Service).
    shares_namespace: bool = False


def _base_reference(base: str, out_dir: Path) -> str:
    """kustomize refuses absolute paths: a local base is written relative to the overlay."""
    if Path(base).exists():
        return os.path.relpath(Path(base).resolve(), out_dir.resolve())
    return base


def _image_override(image: str) -> dict[str, str]:
    name, at, digest = image.partition("@")
    if at:
        return {"name": SERVING_IMAGE, "newName": name, "digest": digest}
    # A tag follows the last ':' that comes after the last '/' (a registry port has none after).
    repository, colon, tag = name.rpartition(":")
    if colon and "/" not in tag:
        return {"name": SERVING_IMAGE, "newName": repository, "newTag": tag}
    return {"name": SERVING_IMAGE, "newName": name}


def kustomization(release: Release, out_dir: Path, base: Render) -> dict[str, Any]:
    """The overlay of `base` (its rendered output says what the overlay must adjust)."""
    document: dict[str, Any] = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "namespace": release.namespace,
        "namePrefix": f"{release.name}-",
        "resources": [_base_reference(release.base, out_dir)],
        "labels": [
            {"pairs": {"app.kubernetes.io/instance": release.name}, "includeSelectors": True}
        ],
    }
    if release.image:
        document["images"] = [_image_override(release.image)]
    if release.model_repository:
        document["configMapGenerator"] = [
            {
                "name": "triton-server",
                "behavior": "merge",
                "literals": [f"MODEL_REPOSITORY={release.model_repository}"],
            }
        ]
    if release.shares_namespace and base.of_kind("PrometheusRule"):
        document["patches"] = [
            {
                "patch": yaml.safe_dump(
                    {
                        "$patch": "delete",
                        "apiVersion": "monitoring.coreos.com/v1",
                        "kind": "PrometheusRule",
                        "metadata": {"name": "triton"},
                    },
                    sort_keys=False,
                )
            }
        ]
    if base.of_kind("ScaledObject"):
        document["replacements"] = [{"path": QUERY_NAMES_FILE}]
    return document


def write_overlay(release: Release, out_dir: Path, base: Render) -> list[Path]:
    """Write the release's overlay of the rendered `base` into `out_dir`; return the files."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header = (
        f"# Release {release.name} in namespace {release.namespace}, written by "
        "`inference-tools release-overlay` (docs/kubernetes.md).\n"
    )
    written = [out_dir / KUSTOMIZATION]
    document = kustomization(release, out_dir, base)
    written[0].write_text(header + yaml.safe_dump(document, sort_keys=False))
    if "replacements" in document:
        names = out_dir / QUERY_NAMES_FILE
        names.write_text(
            "# KEDA's queries name the Service: the autoscaling-keda component's replacements,\n"
            "# run again after this overlay's namespace and namePrefix.\n"
            + yaml.safe_dump(query_replacements(), sort_keys=False)
        )
        written.append(names)
    return written


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def autoscaler_problems(rendered: Render) -> list[str]:
    """Every KEDA query of the release must name a Service of the release, in the release's
    namespace, that selects the pods the ScaledObject scales: otherwise KEDA reads another
    release's series, or none."""
    problems = []
    deployments = {d["metadata"]["name"]: d for d in rendered.of_kind("Deployment")}
    services = {
        (s["metadata"].get("namespace"), s["metadata"]["name"]): s
        for s in rendered.of_kind("Service")
    }
    for scaled_object in rendered.of_kind("ScaledObject"):
        meta = scaled_object["metadata"]
        target = deployments.get(scaled_object["spec"]["scaleTargetRef"]["name"])
        pods = (target or {}).get("spec", {}).get("template", {}).get("metadata", {})
        for trigger in scaled_object["spec"].get("triggers", []):
            query = (trigger.get("metadata") or {}).get("query")
            if trigger.get("type") != "prometheus" or not query:
                continue
            matchers = dict(MATCHER.findall(query))
            where = (matchers.get("namespace"), matchers.get("service"))
            service = services.get(where)
            own = [
                n
                for (ns, n), s in services.items()
                if ns == meta.get("namespace")
                and _selects(s["spec"].get("selector") or {}, pods.get("labels") or {})
            ]
            if service is None or not _selects(
                service["spec"].get("selector") or {}, pods.get("labels") or {}
            ):
                problems.append(
                    f"ScaledObject {meta['name']} (namespace {meta.get('namespace')}): trigger "
                    f"{trigger.get('name')!r} reads namespace={where[0]!r}, service={where[1]!r}, "
                    f"which is not a Service of this release selecting its pods ({own or 'none'}); "
                    "KEDA would read another release's series, or none. Run the component's "
                    f"replacements again after namespace/namePrefix ({QUERY_NAMES_FILE}, written "
                    "by `inference-tools release-overlay`)"
                )
    return problems
