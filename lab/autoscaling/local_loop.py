"""The production CPU overlays as the local autoscaling loop runs them.

The loop changes what one machine cannot do like a cluster (see `loop_kustomize/local-loop`,
shipped in this package) and nothing else; this writes the two kustomizations that put that
component on top of a checkout's `overlays/cpu-hpa` and `overlays/cpu-keda`.
"""

from __future__ import annotations

import os
from pathlib import Path

LOCAL_LOOP_COMPONENT = Path(__file__).resolve().parent / "loop_kustomize" / "local-loop"
OVERLAYS = {"hpa": "cpu-hpa", "keda": "cpu-keda"}


def loop_kustomizations(kustomize_dir: Path, work_dir: Path) -> dict[str, Path]:
    """{"hpa": DIR, "keda": DIR}: each overlay with the local-loop component, under `work_dir`."""
    written = {}
    for name, overlay in OVERLAYS.items():
        source = kustomize_dir / "overlays" / overlay
        if not (source / "kustomization.yaml").is_file():
            raise FileNotFoundError(
                f"{source} has no kustomization.yaml: pass the kustomize folder of a checkout "
                "(--kustomize-dir)"
            )
        target = work_dir / f"local-loop-{name}"
        target.mkdir(parents=True, exist_ok=True)
        # kustomize refuses absolute paths to resources and components.
        resource = os.path.relpath(source.resolve(), target.resolve())
        component = os.path.relpath(LOCAL_LOOP_COMPONENT, target.resolve())
        (target / "kustomization.yaml").write_text(
            f"# overlays/{overlay} as the local autoscaling loop runs it.\n"
            "apiVersion: kustomize.config.k8s.io/v1beta1\n"
            "kind: Kustomization\n"
            f"resources:\n  - {resource}\n"
            f"components:\n  - {component}\n"
        )
        written[name] = target
    return written
