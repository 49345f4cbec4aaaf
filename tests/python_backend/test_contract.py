"""The model configs keep the ensemble's contract (python_backend/contract.py), and every
alternative config (`configs/*.pbtxt`, chosen with --model-config-name) keeps its model's inputs
and outputs exactly as `config.pbtxt` declares them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from inference_tools.model_config import config_as_dict, read_model_config, roles_from_folder

from python_backend import contract
from tests.checkout import MODEL_REPOSITORY

ALTERNATIVE_CONFIGS = sorted(MODEL_REPOSITORY.glob("*/configs/*.pbtxt"))


def config(model: str, path: Path | None = None) -> dict[str, Any]:
    return config_as_dict(read_model_config(path or MODEL_REPOSITORY / model / "config.pbtxt"))


def tensors(config_: dict[str, Any], kind: str) -> dict[str, tuple[str, list[int]]]:
    return {t["name"]: (t["data_type"], [int(d) for d in t["dims"]]) for t in config_[kind]}


def test_there_is_an_alternative_config_to_check() -> None:
    assert ALTERNATIVE_CONFIGS, "no configs/*.pbtxt under model_repository/"


@pytest.mark.parametrize("path", ALTERNATIVE_CONFIGS, ids=lambda p: f"{p.parents[1].name}/{p.name}")
def test_alternative_config_keeps_the_inputs_and_outputs(path: Path) -> None:
    model = path.parents[1].name
    alternative, default = config(model, path), config(model)
    assert alternative.get("name", model) == model
    for kind in ("input", "output"):
        assert alternative[kind] == default[kind], f"{path}: {kind} differs from config.pbtxt"


def test_the_ensemble_takes_text_and_answers_embeddings_through_the_composing_models() -> None:
    ensemble = config(contract.ENSEMBLE)
    assert tensors(ensemble, "input") == {contract.TEXT: ("TYPE_STRING", [1])}
    assert tensors(ensemble, "output") == {
        contract.EMBEDDING: ("TYPE_FP32", [contract.EMBEDDING_SIZE])
    }
    steps = ensemble["ensemble_scheduling"]["step"]
    assert tuple(step["model_name"] for step in steps) == contract.COMPOSING_MODELS


def test_each_composing_model_declares_the_contract_tensors() -> None:
    assert set(tensors(config(contract.TOKENIZER), "input")) == {contract.TEXT}
    assert set(tensors(config(contract.TOKENIZER), "output")) == {
        contract.INPUT_IDS,
        contract.ATTENTION_MASK,
    }
    assert set(tensors(config(contract.ENCODER), "input")) == {
        contract.INPUT_IDS,
        contract.ATTENTION_MASK,
    }
    assert tensors(config(contract.ENCODER), "output") == {
        contract.SENTENCE_EMBEDDING: ("TYPE_FP32", [contract.EMBEDDING_SIZE])
    }


def test_the_probe_canary_reaches_the_ensemble_by_its_contract_names() -> None:
    # The probe names no model: it derives the entry models and their canaries from the configs.
    roles = roles_from_folder(MODEL_REPOSITORY)
    assert contract.ENSEMBLE in roles.select()
    body = roles.canary_request(contract.ENSEMBLE)
    assert [tensor["name"] for tensor in body["inputs"]] == [contract.TEXT]
