"""CustomResourceDefinitions of the operators the overlays name, from their pinned upstream
releases, so the API server runs their schemas, CEL rules and defaulting on our objects.

They come from the Go module proxy, like everything else the cluster is built from, into Go's
module cache (`go mod download`, outside this module's dependency graph).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from kubecluster.build import BuildError, go_binary

# The newest release the Go module proxy serves for the operator's module.
PROMETHEUS_OPERATOR = "github.com/prometheus-operator/prometheus-operator@v0.85.0"
PROMETHEUS_OPERATOR_CRDS = (
    "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml",
    "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml",
)


def module_dir(module_at_version: str) -> Path:
    result = subprocess.run(
        [go_binary(), "mod", "download", "-json", module_at_version],
        capture_output=True, text=True, check=False, cwd="/",
    )  # fmt: skip
    info = json.loads(result.stdout or "{}")
    if result.returncode != 0 or "Dir" not in info:
        raise BuildError(
            f"downloading {module_at_version} failed: {info.get('Error') or result.stderr.strip()}"
        )
    return Path(info["Dir"])


def prometheus_operator_crds() -> list[Path]:
    root = module_dir(PROMETHEUS_OPERATOR)
    return [root / name for name in PROMETHEUS_OPERATOR_CRDS]
