"""The served pipeline in one process, with no server: tokenizer, then the ONNX Runtime session.

It uses the same code and files as the Triton models (python_backend's tokenizer with the
sequence buckets of `tokenizer/config.pbtxt`, the same model.onnx, whose graph pools and
normalises), so that the benchmarks compare serving, not two different pipelines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from inference_tools.model_config import config_as_dict, read_model_config

from python_backend.contract import ENCODER, INPUT_IDS, SENTENCE_EMBEDDING, TOKENIZER
from python_backend.tokenization import TextTokenizer
from python_backend.tokenizer_model import TokenizerModel

ENCODER_OUTPUT = SENTENCE_EMBEDDING


def _string_parameters(config_path: Path) -> dict[str, str]:
    config = config_as_dict(read_model_config(config_path))
    return {key: str(v.get("string_value", "")) for key, v in config.get("parameters", {}).items()}


def load_tokenizer(model_repository: Path) -> TextTokenizer:
    """The tokenizer exactly as the `tokenizer` model builds it from its config parameters."""
    parameters = _string_parameters(model_repository / TOKENIZER / "config.pbtxt")
    model = TokenizerModel.from_parameters(
        model_repository / TOKENIZER / "1", {INPUT_IDS: np.dtype(np.int64)}, parameters
    )
    return model.tokenizer


class EmbeddingPipeline:
    """texts -> unit-length sentence embeddings, in the calling thread."""

    def __init__(self, model_repository: Path, intra_op_threads: int = 0) -> None:
        self.tokenizer = load_tokenizer(model_repository)
        options = ort.SessionOptions()
        # 0 lets ONNX Runtime use every physical core: the best a single caller can get.
        options.intra_op_num_threads = intra_op_threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(
            str(model_repository / ENCODER / "1" / "model.onnx"),
            sess_options=options,
            providers=["CPUExecutionProvider"],
        )
        self.input_names = {node.name for node in self.session.get_inputs()}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        batch = self.tokenizer.pad(self.tokenizer.encode(texts))
        feeds = {k: v for k, v in batch.as_dict().items() if k in self.input_names}
        (embeddings,) = self.session.run([ENCODER_OUTPUT], feeds)
        return embeddings
