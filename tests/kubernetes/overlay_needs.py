"""What a cluster must have before an overlay applies and runs, read from the rendered overlay.

The overlay tables of README.md and docs/kubernetes.md (`| overlay | what it is | needs in the
cluster |`) are checked against this: a row whose needs column names a need the rendered
overlay lacks, or leaves out one it has, is wrong (tests/kubernetes/test_overlay_needs.py).

A need is found in a table cell by its phrase (`Need.pattern`); "as `gpu`, plus ..." takes the
needs of the `gpu` row. The serving image in a registry is the default and goes unsaid; an
overlay that does not pull on every start (`imagePullPolicy: IfNotPresent`) also runs an image
loaded into the nodes (`kind load docker-image`), and its row says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from inference_tools.manifests.render import Render, Resource

GPU_RESOURCE = "nvidia.com/gpu"
# HPA metric types that need a metrics API server beyond metrics-server.
ADAPTER_METRIC_TYPES = {"Pods", "External", "Object"}


class Need(Enum):
    """(what to say, the pattern that recognises it in a table cell)."""

    GPU = ("NVIDIA GPU Operator (or device plugin + GPU feature discovery)", r"GPU Operator")
    PROMETHEUS_OPERATOR = ("Prometheus Operator", r"Prometheus Operator")
    PROMETHEUS_ADAPTER = ("prometheus-adapter", r"prometheus-adapter")
    KEDA = ("KEDA", r"\bKEDA\b")
    GATEWAY_API = ("a Gateway API implementation", r"Gateway API implementation")
    INGRESS_NGINX = ("ingress-nginx", r"ingress-nginx")
    S3_BUCKET = ("an S3 bucket (and its credentials)", r"\bbucket\b")
    LOCAL_IMAGE = ("the image loaded into the nodes (`kind load`) or a registry", r"kind load")

    @property
    def phrase(self) -> str:
        return self.value[0]

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile(self.value[1])


def _group(resource: Resource) -> str:
    api_version = resource.get("apiVersion", "")
    return api_version.split("/")[0] if "/" in api_version else ""


def _pod_specs(resources: Iterable[Resource]) -> Iterable[dict[str, Any]]:
    for resource in resources:
        if resource.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield resource["spec"].get("template", {}).get("spec", {})


def _containers(resources: Iterable[Resource]) -> Iterable[dict[str, Any]]:
    for pod in _pod_specs(resources):
        yield from pod.get("initContainers", [])
        yield from pod.get("containers", [])


def _requests_gpu(container: dict[str, Any]) -> bool:
    resources = container.get("resources", {})
    return any(GPU_RESOURCE in resources.get(part, {}) for part in ("requests", "limits"))


def _reads_s3(resources: list[Resource]) -> bool:
    """A model repository (or anything else) at an s3:// address, in a ConfigMap or the pod."""
    values: list[str] = []
    for resource in resources:
        if resource.get("kind") == "ConfigMap":
            values += [str(v) for v in (resource.get("data") or {}).values()]
    for container in _containers(resources):
        values += [str(a) for a in container.get("args", []) + container.get("command", [])]
        values += [str(e.get("value", "")) for e in container.get("env", [])]
    return any("s3://" in value for value in values)


def derive(render: Render) -> set[Need]:
    """The needs of one rendered overlay."""
    resources = render.resources
    groups = {_group(r) for r in resources}
    needs: set[Need] = set()
    containers = list(_containers(resources))
    if any(_requests_gpu(c) for c in containers):
        needs.add(Need.GPU)
    if "monitoring.coreos.com" in groups:
        needs.add(Need.PROMETHEUS_OPERATOR)
    if "keda.sh" in groups:
        needs.add(Need.KEDA)
    if any(
        metric.get("type") in ADAPTER_METRIC_TYPES
        for hpa in render.of_kind("HorizontalPodAutoscaler")
        for metric in hpa["spec"].get("metrics", [])
    ):
        needs.add(Need.PROMETHEUS_ADAPTER)
    if "gateway.networking.k8s.io" in groups:
        needs.add(Need.GATEWAY_API)
    if any(i["spec"].get("ingressClassName") == "nginx" for i in render.of_kind("Ingress")):
        needs.add(Need.INGRESS_NGINX)
    if _reads_s3(resources):
        needs.add(Need.S3_BUCKET)
    if containers and all(c.get("imagePullPolicy") == "IfNotPresent" for c in containers):
        needs.add(Need.LOCAL_IMAGE)
    return needs


# --- the tables in the docs ---------------------------------------------------------------------

TABLE_HEADER = ("overlay", "what it is", "needs in the cluster")
# A reference to another row: "as `gpu`" (then "plus ..." adds to it).
SAME_AS = re.compile(r"\bas `([\w-]+)`")
OVERLAY_NAME = re.compile(r"`([\w-]+)`")


@dataclass(frozen=True)
class TableRow:
    document: str
    line: int
    overlays: tuple[str, ...]
    needs_text: str


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_rows(document: Path) -> list[TableRow]:
    """Rows of every `| overlay | what it is | needs in the cluster |` table in a Markdown file."""
    rows: list[TableRow] = []
    in_table = False
    for number, line in enumerate(document.read_text().splitlines(), start=1):
        if not line.lstrip().startswith("|"):
            in_table = False
            continue
        cells = _cells(line)
        if tuple(c.lower() for c in cells) == TABLE_HEADER:
            in_table = True
            continue
        if not in_table or set(line.replace("|", "").strip()) <= {"-", " ", ":"}:
            continue
        rows.append(
            TableRow(document.name, number, tuple(OVERLAY_NAME.findall(cells[0])), cells[-1])
        )
    return rows


def stated_needs(
    row: TableRow, rows: list[TableRow], seen: frozenset[str] = frozenset()
) -> set[Need]:
    """The needs a row's text names, with those of the row it refers to ("as `gpu`")."""
    needs = {need for need in Need if need.pattern.search(row.needs_text)}
    for name in SAME_AS.findall(row.needs_text):
        if name in seen:
            raise ValueError(f"{row.document}:{row.line}: `{name}` refers to itself")
        referred = [r for r in rows if name in r.overlays and r.document == row.document]
        if not referred:
            raise ValueError(f"{row.document}:{row.line}: no row for `{name}` to refer to")
        needs |= stated_needs(referred[0], rows, seen | {name})
    return needs


def table_problems(rows: list[TableRow], derived: dict[str, set[Need]]) -> list[str]:
    """What the rows of one document get wrong against the derived needs of every overlay."""
    problems = []
    listed: set[str] = set()
    for row in rows:
        where = f"{row.document}:{row.line}"
        if not row.overlays:
            problems.append(f"{where}: the row names no overlay")
        for name in row.overlays:
            listed.add(name)
            if name not in derived:
                problems.append(f"{where}: `{name}` is no overlay under kustomize/overlays")
                continue
            try:
                stated = stated_needs(row, rows)
            except ValueError as error:
                problems.append(str(error))
                continue
            missing = derived[name] - stated
            extra = stated - derived[name]
            if missing:
                problems.append(
                    f"{where}: `{name}` also needs {', '.join(sorted(n.phrase for n in missing))}"
                )
            if extra:
                problems.append(
                    f"{where}: `{name}` does not need {', '.join(sorted(n.phrase for n in extra))}"
                )
    documents = {row.document for row in rows}
    for name in sorted(set(derived) - listed):
        problems.append(f"{', '.join(sorted(documents))}: no row for overlay `{name}`")
    return problems
