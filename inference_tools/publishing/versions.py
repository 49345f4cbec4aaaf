"""Which versions a model serves: the `version_policy` of its config.pbtxt in the store.

The policy is kept in a block that this tool appends after a marker comment, so that the rest of
the user's config (comments included) is published as written and a switch rewrites only the
block. Configs that carry their own `version_policy` are re-serialised once, without comments.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from google.protobuf import text_format

from inference_tools.model_config import parse_model_config

POLICY_MARKER = "# --- served versions: written by `inference-tools publish` / `rollback` ---"


def served_versions(config: Any) -> list[int]:
    """The versions a `specific` policy names; empty when the policy is anything else."""
    if config.version_policy.WhichOneof("policy_choice") != "specific":
        return []
    return sorted(int(v) for v in config.version_policy.specific.versions)


def _policy_block(versions: Iterable[int]) -> str:
    listed = ", ".join(str(v) for v in sorted(set(versions)))
    return f"{POLICY_MARKER}\nversion_policy {{ specific {{ versions: [ {listed} ] }} }}\n"


def with_served_versions(config_text: str, versions: Iterable[int], source: str) -> str:
    """`config_text` with its version policy replaced by `specific { versions }`.

    The result is parsed again before it is returned, so a store never receives a config that
    Triton's schema refuses.
    """
    versions = sorted(set(versions))
    if not versions:
        raise ValueError("a model must serve at least one version")
    head = config_text.split(POLICY_MARKER, 1)[0]
    config = parse_model_config(head, source)
    if config.HasField("version_policy"):
        config.ClearField("version_policy")
        head = text_format.MessageToString(config)
    text = head.rstrip("\n") + "\n\n" + _policy_block(versions)
    parsed = parse_model_config(text, source)
    assert served_versions(parsed) == versions
    return text


def next_version(existing: Iterable[int]) -> int:
    """One above the highest version folder in the store (served or not)."""
    return max(existing, default=0) + 1
