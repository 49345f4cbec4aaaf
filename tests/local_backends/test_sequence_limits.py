"""The encoder's sequence limits, without a server."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from inference_tools.onnx_model import MAX_SEQUENCE_LENGTH_KEY, OnnxModel
from onnx import TensorProto, helper

from python_backend.errors import InvalidInputError


def write_masked_sum_graph(path: Path) -> Path:
    """y = sum(ids * mask) over the sequence, for ids and mask INT64 [batch, sequence]."""
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "sequence"])
    mask = helper.make_tensor_value_info("mask", TensorProto.INT64, ["batch", "sequence"])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, ["batch"])
    nodes = [
        helper.make_node("Mul", ["ids", "mask"], ["product"]),
        helper.make_node("ReduceSum", ["product"], ["y"], keepdims=0, axes=[1]),
    ]
    graph = helper.make_graph(nodes, "g", [ids, mask], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


@pytest.fixture
def model(tmp_path: Path) -> OnnxModel:
    graph = write_masked_sum_graph(tmp_path / "summer" / "1" / "model.onnx")
    config = {
        "name": "summer",
        "max_batch_size": 8,
        "input": [
            {"name": "ids", "data_type": "TYPE_INT64", "dims": ["-1"]},
            {"name": "mask", "data_type": "TYPE_INT64", "dims": ["-1"]},
        ],
        "output": [{"name": "y", "data_type": "TYPE_INT64", "dims": []}],
        "parameters": {MAX_SEQUENCE_LENGTH_KEY: {"string_value": "4"}},
    }
    return OnnxModel.from_triton_args(config, graph.parent.parent, "1")


def feeds(length: int, mask_length: int | None = None) -> dict[str, np.ndarray]:
    return {
        "ids": np.ones((2, length), np.int64),
        "mask": np.ones((2, mask_length or length), np.int64),
    }


def test_the_limit_is_accepted_one_more_is_refused_alone(model: OnnxModel):
    accepted, refused, mismatched = model.run_batched([feeds(4), feeds(5), feeds(3, 4)])
    np.testing.assert_array_equal(accepted["y"], [4, 4])
    assert isinstance(refused, InvalidInputError)
    assert "has 5 in dimension 1 of shape [2, 5]; the limit is 4" in str(refused)
    assert isinstance(mismatched, InvalidInputError)
    assert "dimension 'sequence' is 3 in input 'ids' but 4 in input 'mask'" in str(mismatched)
