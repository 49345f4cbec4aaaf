"""The checkout the tests run in: the tests read its folders by absolute path, whatever the
current directory (the commands' own defaults are relative to it)."""

from __future__ import annotations

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[1]
MODEL_REPOSITORY = CHECKOUT / "model_repository"
KUSTOMIZE_DIR = CHECKOUT / "kustomize"
