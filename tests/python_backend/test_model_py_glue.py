"""The repository's model.py files, run against a fake of Triton's Python-backend utils."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from inference_tools.model_config import config_as_dict, read_model_config

from tests.checkout import MODEL_REPOSITORY
from tests.python_backend.model_py_loading import load_model_py, triton_args


def initialized_model(name: str, repository: Path = MODEL_REPOSITORY):
    model_dir = repository / name
    config = config_as_dict(read_model_config(model_dir / "config.pbtxt"))
    model = load_model_py(model_dir / "1" / "model.py").TritonPythonModel()
    model.initialize(triton_args(model_dir, config))
    return model


def request(pb_utils, **inputs: np.ndarray):
    return pb_utils.InferenceRequest(
        [pb_utils.Tensor(name, value) for name, value in inputs.items()]
    )


def test_tokenizer_answers_each_request_and_isolates_bad_ones(pb_utils, tokenizer_json):
    model = initialized_model("tokenizer")
    texts = [
        np.array([[b"hello world"]], dtype=object),
        np.array([[b"\xff not utf-8"]], dtype=object),
        np.array([[b"a much longer sentence " * 5], [b"short"]], dtype=object),
    ]
    responses = model.execute([request(pb_utils, TEXT=t) for t in texts])
    assert len(responses) == 3
    assert not responses[0].has_error() and not responses[2].has_error()
    assert responses[1].error().code() == pb_utils.TritonError.INVALID_ARG
    assert "not valid UTF-8" in responses[1].error().message()
    ids = pb_utils.get_output_tensor_by_name(responses[2], "input_ids").as_numpy()
    mask = pb_utils.get_output_tensor_by_name(responses[2], "attention_mask").as_numpy()
    assert ids.shape == mask.shape == (2, 32) and ids.dtype == np.int64
    # The config lists no token_type_ids output, so none is produced.
    assert pb_utils.get_output_tensor_by_name(responses[0], "token_type_ids") is None


def test_onnxruntime_backend_refuses_a_config_that_misnames_an_input(
    pb_utils, model_repository, tmp_path
):
    backend = load_model_py(
        Path(__file__).resolve().parents[2]
        / "inference_tools"
        / "local_backends"
        / "onnxruntime"
        / "model.py"
    )
    config = config_as_dict(read_model_config(model_repository / "minilm" / "config.pbtxt"))
    config["input"][0]["name"] = "token_ids"
    with pytest.raises(ValueError, match="model 'minilm': input 'token_ids' in the config"):
        backend.TritonPythonModel().initialize(triton_args(model_repository / "minilm", config))
