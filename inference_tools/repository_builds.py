"""Every generated file of the project's model repository, built in one call: the embedding
pipeline's (model_artifacts) and the digit classifier (digits_classifier). Each part keeps its
own stamp and returns at once when up to date."""

from __future__ import annotations

from pathlib import Path

from inference_tools.digits_classifier import build_digits_classifier
from inference_tools.model_artifacts import build_model_artifacts


def build_repository_models(model_repository: Path, force: bool = False) -> None:
    build_model_artifacts(model_repository, force=force)
    build_digits_classifier(model_repository, force=force)
