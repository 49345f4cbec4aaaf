"""Model names and version numbers that are safe to turn into store paths and URLs."""

from __future__ import annotations

import re

# Letters, digits, '_', '-' and '.', starting with a letter or digit: a name that is one path
# segment everywhere (folder, S3 key, URL) and that Triton's repository index lists as itself.
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_MODEL_NAME_LENGTH = 128


class InvalidModelNameError(ValueError):
    pass


def check_model_name(name: str) -> str:
    """Return `name` if it is a valid model name that stays inside the store; raise otherwise."""
    if not name:
        raise InvalidModelNameError("the model name is empty")
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise InvalidModelNameError(
            f"model name {name[:40]!r}... is longer than {MAX_MODEL_NAME_LENGTH} characters"
        )
    if "/" in name or "\\" in name:
        raise InvalidModelNameError(
            f"model name {name!r} contains a path separator: a model is one folder of the store"
        )
    if ".." in name:
        raise InvalidModelNameError(f"model name {name!r} contains '..'")
    if not MODEL_NAME_PATTERN.fullmatch(name):
        raise InvalidModelNameError(
            f"model name {name!r} is not allowed: use letters, digits, '_', '-' and '.', "
            "starting with a letter or a digit"
        )
    return name


def check_version(version: int) -> int:
    # Triton reads version folders as positive integers; 0 and negatives are never served.
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"model version {version!r} is not a positive integer")
    return version


def parse_version_folder(folder_name: str) -> int | None:
    """The version a folder name stands for, or None when Triton would not read it as one."""
    if not folder_name.isascii() or not folder_name.isdigit():
        return None
    version = int(folder_name)
    return version if version >= 1 else None
