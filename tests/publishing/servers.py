"""How the publishing tests run Triton: explicit model-control mode, its repository API behind
an admin header as in the cluster."""

from __future__ import annotations

from pod_hooks.model_roles import ADMIN_HEADER

ADMIN_KEY = "publish-tests-admin-key"


def explicit_mode_args(admin_key: str = ADMIN_KEY) -> list[str]:
    return [
        "--model-control-mode=explicit",
        f"--http-restricted-api=model-repository:{ADMIN_HEADER}={admin_key}",
    ]
