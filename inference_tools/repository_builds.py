"""Every generated file of the project's model repository, built in one call: the embedding
pipeline's (model_artifacts) and the digit classifier (digits_classifier). Each part keeps its
own stamp and returns at once when up to date."""

from __future__ import annotations

from pathlib import Path

from inference_tools.paths import MODEL_REPOSITORY


def build_repository_models(model_repository: Path, force: bool = False) -> None:
    # Imported here: numpy, onnx and the weights package cost the commands' `--help` a second.
    from inference_tools.digits_classifier import build_digits_classifier
    from inference_tools.model_artifacts import build_model_artifacts

    build_model_artifacts(model_repository, force=force)
    build_digits_classifier(model_repository, force=force)


def build_if_default_repository(model_repository: Path) -> None:
    """Build the generated files when `model_repository` is the project's own (the default,
    `model_repository/` here): every command that serves it needs them. Any other repository, a
    team's, is served as it is."""
    if model_repository.resolve() == MODEL_REPOSITORY.resolve():
        build_repository_models(model_repository)
