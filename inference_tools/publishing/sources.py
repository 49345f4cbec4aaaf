"""What a user hands `publish`: a model folder as in model_repository/, or a bare .onnx file.

Either becomes a `ModelSource`: the model's name, its config text and parsed config, and the
files of the one version folder to publish (paths relative to that folder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inference_tools.model_config import parse_model_config
from inference_tools.publishing.names import check_model_name, parse_version_folder
from inference_tools.publishing.onnx_config import config_text_from_onnx

CONFIG_FILE = "config.pbtxt"
# Never published: interpreter caches and editor leftovers are not part of a model.
IGNORED_PARTS = {"__pycache__", ".ipynb_checkpoints"}
IGNORED_SUFFIXES = (".pyc", ".swp", "~")
NAME_LINE = re.compile(r'^name\s*:\s*"[^"\n]*"[ \t]*$', re.MULTILINE)


class ModelSourceError(ValueError):
    pass


@dataclass(frozen=True)
class ModelSource:
    name: str
    config_text: str
    config: Any  # model_config_pb2.ModelConfig
    files: dict[str, Path] = field(default_factory=dict)
    origin: str = ""

    @property
    def is_ensemble(self) -> bool:
        return self.config.platform == "ensemble"

    @property
    def is_python(self) -> bool:
        return self.config.backend == "python"

    @property
    def is_onnx(self) -> bool:
        return self.config.backend == "onnxruntime" or self.config.platform == "onnxruntime_onnx"


def _version_files(folder: Path) -> dict[str, Path]:
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if not path.is_file() or IGNORED_PARTS.intersection(relative.parts):
            continue
        if path.name.endswith(IGNORED_SUFFIXES):
            continue
        files[relative.as_posix()] = path
    return files


def _source_version_folder(model_dir: Path) -> Path | None:
    """The highest numbered version folder: the one whose files are published."""
    numbered = [
        (version, child)
        for child in model_dir.iterdir()
        if child.is_dir() and (version := parse_version_folder(child.name)) is not None
    ]
    return max(numbered)[1] if numbered else None


def with_model_name(config_text: str, name: str, source: str) -> str:
    """The config with its `name` set to `name` (Triton requires it to match the folder)."""
    config = parse_model_config(config_text, source)
    if config.name == name:
        return config_text
    if not config.name:
        return f'name: "{name}"\n{config_text}'
    renamed, count = NAME_LINE.subn(f'name: "{name}"', config_text, count=1)
    if count != 1 or parse_model_config(renamed, source).name != name:
        raise ModelSourceError(
            f'{source}: cannot rename the model to {name!r}: put `name: "..."` on a line of its '
            "own, or leave the name out"
        )
    return renamed


def read_model_source(path: Path, name: str | None = None) -> ModelSource:
    if not path.exists():
        raise ModelSourceError(f"{path} does not exist")
    if path.is_file():
        if path.suffix != ".onnx":
            raise ModelSourceError(
                f"{path} is a file but not an .onnx graph: give a model folder (a config.pbtxt "
                "and version folders) or an .onnx file"
            )
        model_name = check_model_name(name or path.stem)
        text = config_text_from_onnx(path, model_name)
        return ModelSource(
            name=model_name,
            config_text=text,
            config=parse_model_config(text, f"{path} (generated config)"),
            files={"model.onnx": path},
            origin=str(path),
        )
    config_path = path / CONFIG_FILE
    if not config_path.is_file():
        raise ModelSourceError(f"{path} has no {CONFIG_FILE}")
    text = config_path.read_text()
    config = parse_model_config(text, str(config_path))
    model_name = check_model_name(name or config.name or path.resolve().name)
    text = with_model_name(text, model_name, str(config_path))
    version_folder = _source_version_folder(path)
    files = _version_files(version_folder) if version_folder is not None else {}
    config = parse_model_config(text, str(config_path))
    if not files and config.platform != "ensemble":
        raise ModelSourceError(
            f"{path} has no version folder with files (for example {path}/1/model.onnx)"
        )
    return ModelSource(
        name=model_name, config_text=text, config=config, files=files, origin=str(path)
    )
