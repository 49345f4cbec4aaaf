"""Triton model configs read with Triton's own protobuf schema (the one tritonclient ships)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from google.protobuf import json_format, text_format
from pod_hooks.model_roles import ModelRoles, ModelRolesError
from tritonclient.grpc import model_config_pb2

ModelConfig = model_config_pb2.ModelConfig


class ModelConfigSyntaxError(ValueError):
    pass


def parse_model_config(text: str, source: str = "config.pbtxt") -> Any:
    """Parse protobuf text; an unknown field or a typo names the file and line."""
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as error:
        raise ModelConfigSyntaxError(f"{source}:{error}") from None


def read_model_config(path: Path) -> Any:
    return parse_model_config(path.read_text(), str(path))


def config_as_dict(config: Any) -> dict[str, Any]:
    """The config as the JSON-like dict Triton hands a Python model's initialize()."""
    return json_format.MessageToDict(config, preserving_proto_field_name=True)


def configs_from_folder(model_repository: Path) -> dict[str, dict[str, Any]]:
    """The configs of every model folder (one holding config.pbtxt) in a repository folder."""
    folders = sorted(p.parent for p in Path(model_repository).glob("*/config.pbtxt"))
    if not folders:
        raise ModelRolesError(f"{model_repository} holds no model folder with a config.pbtxt")
    configs = {}
    for folder in folders:
        config = config_as_dict(read_model_config(folder / "config.pbtxt"))
        configs[str(config.get("name") or folder.name)] = config
    return configs


def roles_from_folder(model_repository: Path) -> ModelRoles:
    return ModelRoles(configs_from_folder(model_repository))
