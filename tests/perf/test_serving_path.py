"""The serving-path mode's pieces that need no server: the lookup repository and its data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from lab.perf import serving_path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lookup_repository_swaps_only_the_encoder_and_leaves_the_source_alone(
    model_repository: Path, tmp_path: Path
) -> None:
    source_encoder = model_repository / serving_path.ENCODER_FILE
    before = _sha256(source_encoder)
    copy = serving_path.lookup_repository(model_repository, tmp_path / "repo")
    assert _sha256(source_encoder) == before
    lookup = onnx.load(str(copy / serving_path.ENCODER_FILE))
    real = onnx.load(str(source_encoder), load_external_data=False)
    assert [o.name for o in lookup.graph.output] == [o.name for o in real.graph.output]
    assert {n.op_type for n in lookup.graph.node}.isdisjoint({"Softmax", "LayerNormalization"})
    for config in model_repository.glob("*/config.pbtxt"):
        assert (copy / config.relative_to(model_repository)).read_text() == config.read_text()


def test_input_data_holds_short_and_medium_texts_one_per_entry() -> None:
    texts = serving_path.serving_texts()
    document = serving_path.input_data(texts)
    assert len(document["data"]) == len(texts) > 64
    assert all(entry["TEXT"]["shape"] == [1] for entry in document["data"])
    assert max(len(text.split()) for text in texts) < 40  # no paragraphs or documents
