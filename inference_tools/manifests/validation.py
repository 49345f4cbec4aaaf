"""Offline validation of the Kubernetes manifests: render, schema-check, scan, cross-check.

No cluster is needed. Every overlay under kustomize/overlays/ is rendered with `kubectl kustomize`
and checked; so is every component on top of the base, so that components no overlay uses yet
are covered too, and every Job under kustomize/jobs/. The checks:

- core resources against the Kubernetes OpenAPI schemas of several minor versions, strictly
  (unknown fields are errors), with kubernetes-validate;
- custom resources (ServiceMonitor, PrometheusRule, HTTPRoute, GRPCRoute, ScaledObject) against
  models generated from their upstream CRDs (crd_validation/ beside this module);
- checkov's Kubernetes policies: zero failures, every skip an annotation with a reason;
- PrometheusRule groups with promtool.

The cross-reference checks live in the test suite (tests/kubernetes); this module gives them the
rendered resources and the helpers they share with `inference-tools validate-manifests`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from inference_tools.manifests import release_overlay
from inference_tools.manifests.render import (
    Render,
    Resource,
    ToolMissing,
    render,
    render_all,
    render_jobs,
    resource_id,
    resource_key,
)
from inference_tools.paths import KUSTOMIZE_DIR
from inference_tools.system_packages import SystemPackageMissing

# validate.mjs and the npm lock of the CRD models it imports; `npm ci --prefix` this folder (or a
# copy of it) installs them.
CRD_VALIDATION_DIR = Path(__file__).resolve().parent / "crd_validation"
# Where `make manifest-tools` puts checkov (its pins clash with ours); else checkov on PATH.
CHECKOV = Path(".tools") / "checkov" / "bin" / "checkov"
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


@dataclass
class Report:
    """Problems found, per check; empty lists mean the check passed."""

    problems: dict[str, list[str]] = field(default_factory=dict)

    def add(self, check: str, problems: Iterable[str]) -> None:
        self.problems.setdefault(check, []).extend(problems)

    @property
    def ok(self) -> bool:
        return not any(self.problems.values())


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


def validate_custom(
    resources: list[Resource], crd_dir: Path = CRD_VALIDATION_DIR
) -> list[dict[str, Any]]:
    """Each custom resource with its errors (crd_validation/validate.mjs)."""
    if not (crd_dir / "node_modules").is_dir():
        if not shutil.which("npm"):
            raise SystemPackageMissing("npm (Debian's npm), which installs the CRD models,")
        raise ToolMissing(
            f"CRD models not installed in {crd_dir}: run `make manifest-tools`, or "
            f"`npm ci --prefix {crd_dir}`"
        )
    node = shutil.which("node")
    if not node:
        raise SystemPackageMissing("node (Debian's nodejs)")
    if not resources:
        return []
    result = subprocess.run(
        [node, str(crd_dir / "validate.mjs")],
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


def validate_custom_in(renders: list[Render], crd_dir: Path = CRD_VALIDATION_DIR) -> list[str]:
    pairs = list(custom_resources(renders))
    results = validate_custom([resource for _, resource in pairs], crd_dir)
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


def checkov_binary(checkov: Path = CHECKOV) -> str:
    if checkov.is_file():
        return str(checkov)
    found = shutil.which("checkov")
    if not found:
        raise ToolMissing(f"checkov not found at {checkov} nor on PATH: run `make manifest-tools`")
    return found


def run_checkov(
    renders: list[Render], work_dir: Path, checkov: Path = CHECKOV
) -> list[CheckovFinding]:
    """One checkov run over every render (each in its own file); failed and skipped checks."""
    binary = checkov_binary(checkov)
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
            binary,
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
        raise SystemPackageMissing("promtool (Debian's prometheus)")
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


# --- everything ---------------------------------------------------------------------------------


def validate_releases(overlays: Iterable[Path], crd_dir: Path = CRD_VALIDATION_DIR) -> Report:
    """A team's overlays of the shipped ones (`inference-tools release-overlay` writes them)."""
    report = Report()
    renders = [render(overlay, str(overlay)) for overlay in overlays]
    for render_ in renders:
        report.add("kubernetes schemas", validate_core(render_))
        report.add("autoscaler reads its own release", release_overlay.autoscaler_problems(render_))
    report.add("custom resources", validate_custom_in(renders, crd_dir))
    return report


def validate_all(
    work_dir: Path,
    kustomize_dir: Path = KUSTOMIZE_DIR,
    checkov: Path = CHECKOV,
    crd_dir: Path = CRD_VALIDATION_DIR,
) -> Report:
    report = Report()
    renders = render_all(work_dir, kustomize_dir) + render_jobs(kustomize_dir)
    for render_ in renders:
        report.add("kubernetes schemas", validate_core(render_))
        with tempfile.TemporaryDirectory(dir=work_dir) as rules_dir:
            report.add("promtool", promtool_check_rules(rule_groups(render_), Path(rules_dir)))
    report.add("custom resources", validate_custom_in(renders, crd_dir))
    report.add("implementation policies", validate_schema_kinds_in(renders))
    # What is deployed as it is: the overlays and the Jobs.
    deployed = [r for r in renders if not r.name.startswith("component:")]
    findings = run_checkov(deployed, work_dir, checkov)
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
