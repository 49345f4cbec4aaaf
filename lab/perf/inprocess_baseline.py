"""The served pipeline in one process, with no server: tokenizer, then the ONNX Runtime session.

It uses the same code and files as the Triton models (python_backend's tokenizer with the
sequence buckets of `tokenizer/config.pbtxt`, the same model.onnx, whose graph pools and
normalises), so that the benchmarks compare serving, not two different pipelines.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from inference_tools.model_config import config_as_dict, read_model_config
from inference_tools.onnx_model import session_options

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


def encoder_config(model_repository: Path) -> dict[str, Any]:
    return config_as_dict(read_model_config(model_repository / ENCODER / "config.pbtxt"))


def encoder_instances(model_repository: Path) -> int:
    """How many instances of the encoder Triton runs (its instance_group counts, at least 1)."""
    groups = encoder_config(model_repository).get("instance_group", [])
    return max(1, sum(int(group.get("count", 1)) for group in groups))


def served_settings_text(model_repository: Path) -> str:
    """The served encoder's ONNX Runtime settings, in words, for the report."""
    threads = served_session_options(model_repository).intra_op_num_threads
    return (
        f"{threads or 'default'} intra-op thread{'s' if threads != 1 else ''} per session, "
        "spinning off, all graph optimisations"
    )


def served_session_options(model_repository: Path) -> ort.SessionOptions:
    """The ONNX Runtime session options the served encoder gets from its config (threads,
    spinning off), built by the same function as the serving backend's."""
    return session_options(encoder_config(model_repository))


class EmbeddingPipeline:
    """texts -> unit-length sentence embeddings, in the calling thread (thread-safe: ONNX
    Runtime's `run` may be called from several threads at once)."""

    def __init__(
        self,
        model_repository: Path,
        intra_op_threads: int = 0,
        *,
        options: ort.SessionOptions | None = None,
    ) -> None:
        """`options`: the session options outright (`served_session_options`); otherwise
        ONNX Runtime's defaults with `intra_op_threads` (0 lets it use every physical core)."""
        self.tokenizer = load_tokenizer(model_repository)
        if options is None:
            options = ort.SessionOptions()
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


def served_pipelines(model_repository: Path) -> list[EmbeddingPipeline]:
    """One pipeline per encoder instance, each with its own session and the served options: the
    model as the server runs it, for one caller per instance."""
    options = served_session_options(model_repository)
    return [
        EmbeddingPipeline(model_repository, options=options)
        for _ in range(encoder_instances(model_repository))
    ]
