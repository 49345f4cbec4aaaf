"""The local `onnxruntime` backend refuses configs that do not describe the graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from inference_tools.onnx_model import (
    ARENA_SHRINKAGE_KEY,
    NONEMPTY_ROWS_KEY,
    SPINNING_CONFIG_KEY,
    ModelConfigError,
    OnnxModel,
    session_options,
)
from onnx import TensorProto, helper

from python_backend.errors import InvalidInputError


def write_doubling_graph(path: Path, batch_dim: int | str = "batch") -> Path:
    """y = x * 2 for x FLOAT [batch, 3]."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch_dim, 3])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "two"], ["y"])], "g", [x], [y], [two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def config(**overrides) -> dict:
    base = {
        "name": "doubler",
        "max_batch_size": 8,
        "input": [{"name": "x", "data_type": "TYPE_FP32", "dims": ["3"]}],
        "output": [{"name": "y", "data_type": "TYPE_FP32", "dims": ["3"]}],
    }
    return base | overrides


@pytest.fixture
def graph(tmp_path: Path) -> Path:
    return write_doubling_graph(tmp_path / "doubler" / "1" / "model.onnx")


def test_matching_config_loads_and_runs(graph: Path):
    model = OnnxModel.from_triton_args(config(), graph.parent.parent, "1")
    out = model.run({"x": np.ones((2, 3), np.float32)})
    np.testing.assert_array_equal(out["y"], np.full((2, 3), 2.0, np.float32))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"input": [{"name": "wrong", "data_type": "TYPE_FP32", "dims": ["3"]}]},
            r"model 'doubler': input 'wrong' in the config is not an input of the ONNX graph",
        ),
        (
            {"output": [{"name": "z", "data_type": "TYPE_FP32", "dims": ["3"]}]},
            r"output 'z' in the config is not an output",
        ),
        (
            {"input": [{"name": "x", "data_type": "TYPE_INT64", "dims": ["3"]}]},
            r"input 'x': data_type TYPE_INT64 in the config, but the ONNX graph has tensor",
        ),
        (
            {"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": ["4"]}]},
            r"input 'x': dims\[0\] is 4 in the config, but the ONNX graph fixes it to 3",
        ),
        (
            {"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": ["3", "1"]}]},
            r"input 'x': dims \[3, 1\] in the config",
        ),
        ({"input": []}, r"the ONNX graph needs inputs \['x'\] that the config does not declare"),
    ],
)
def test_config_that_does_not_match_the_graph_is_refused(graph, overrides, message):
    with pytest.raises(ModelConfigError, match=message):
        OnnxModel.from_triton_args(config(**overrides), graph.parent.parent, "1")


def test_batching_over_a_fixed_first_dimension_is_refused(tmp_path: Path):
    graph = write_doubling_graph(tmp_path / "fixed" / "1" / "model.onnx", batch_dim=1)
    with pytest.raises(ModelConfigError, match=r"max_batch_size 8 needs a dynamic first dimension"):
        OnnxModel.from_triton_args(config(), graph.parent.parent, "1")
    # Without batching the same graph is fine: its dims are then the full shape.
    unbatched = config(
        max_batch_size=0,
        input=[{"name": "x", "data_type": "TYPE_FP32", "dims": ["1", "3"]}],
        output=[{"name": "y", "data_type": "TYPE_FP32", "dims": ["1", "3"]}],
    )
    OnnxModel.from_triton_args(unbatched, graph.parent.parent, "1")


def test_broken_model_file_is_a_load_error_naming_the_model(tmp_path: Path):
    broken = tmp_path / "doubler" / "1" / "model.onnx"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"this is not a protobuf")
    with pytest.raises(ModelConfigError, match="model 'doubler': ONNX Runtime cannot load"):
        OnnxModel.from_triton_args(config(), tmp_path / "doubler", "1")


def test_missing_model_file_is_named(tmp_path: Path):
    with pytest.raises(ModelConfigError, match="does not exist"):
        OnnxModel.from_triton_args(config(), tmp_path / "doubler", "1")


def test_requests_of_equal_shape_run_as_one_batch(graph: Path, monkeypatch):
    model = OnnxModel.from_triton_args(config(), graph.parent.parent, "1")
    calls: list[tuple[int, ...]] = []
    real_run = model.run
    monkeypatch.setattr(
        model, "run", lambda feeds: calls.append(feeds["x"].shape) or real_run(feeds)
    )
    requests = [{"x": np.full((n, 3), n, np.float32)} for n in (1, 2, 3)]
    results = model.run_batched(requests)
    assert calls == [(6, 3)]
    for n, result in zip((1, 2, 3), results, strict=True):
        assert isinstance(result, dict)
        np.testing.assert_array_equal(result["y"], np.full((n, 3), 2.0 * n, np.float32))


def test_a_failing_group_fails_only_its_requests(graph: Path):
    model = OnnxModel.from_triton_args(config(), graph.parent.parent, "1")
    good = {"x": np.ones((1, 3), np.float32)}
    bad = {"x": np.ones((1, 5), np.float32)}  # ORT rejects the width: its own group fails
    results = model.run_batched([good, bad, good])
    assert isinstance(results[1], Exception)
    assert isinstance(results[0], dict) and isinstance(results[2], dict)


def test_a_failed_batch_is_retried_one_request_at_a_time(graph: Path, monkeypatch):
    model = OnnxModel.from_triton_args(config(), graph.parent.parent, "1")
    real_run = model.run

    def run_refusing_negatives(feeds):
        # Stands in for a graph that fails on one row's values (an index out of range).
        if (feeds["x"] < 0).any():
            raise ValueError("a negative value in the batch")
        return real_run(feeds)

    monkeypatch.setattr(model, "run", run_refusing_negatives)
    good = {"x": np.ones((1, 3), np.float32)}
    bad = {"x": -np.ones((1, 3), np.float32)}
    results = model.run_batched([good, bad, good])
    assert isinstance(results[1], Exception)
    for result in (results[0], results[2]):
        assert isinstance(result, dict)
        np.testing.assert_array_equal(result["y"], np.full((1, 3), 2.0, np.float32))


def test_onnx_runtime_invalid_arguments_are_client_errors(graph: Path):
    model = OnnxModel.from_triton_args(config(), graph.parent.parent, "1")
    (result,) = model.run_batched([{"x": np.ones((1, 5), np.float32)}])
    assert isinstance(result, InvalidInputError)


def ranged(**parameters: str) -> dict:
    return config(parameters={k: {"string_value": v} for k, v in parameters.items()})


def test_values_outside_the_configured_range_are_refused_before_the_batch(graph: Path):
    model = OnnxModel.from_triton_args(
        ranged(**{"valid_range.x": "0..16"}), graph.parent.parent, "1"
    )
    good = {"x": np.full((1, 3), 16, np.float32)}
    results = model.run_batched(
        [
            good,
            {"x": np.full((1, 3), 17, np.float32)},
            {"x": np.array([[1, np.nan, 2]], np.float32)},
        ]
    )
    assert isinstance(results[0], dict)
    assert isinstance(results[1], InvalidInputError) and "0..16" in str(results[1])
    assert isinstance(results[2], InvalidInputError) and "nan" in str(results[2])


def test_rows_without_a_non_zero_value_are_refused(graph: Path):
    model = OnnxModel.from_triton_args(ranged(**{NONEMPTY_ROWS_KEY: "x"}), graph.parent.parent, "1")
    rows = np.array([[1, 0, 0], [0, 0, 0]], np.float32)
    (result,) = model.run_batched([{"x": rows}])
    assert isinstance(result, InvalidInputError) and "row 1" in str(result)


@pytest.mark.parametrize(
    "parameters",
    [{"valid_range.x": "0-16"}, {"valid_range.nope": "0..1"}, {NONEMPTY_ROWS_KEY: "nope"}],
)
def test_value_checks_that_name_no_input_or_no_range_do_not_load(graph: Path, parameters):
    with pytest.raises(ModelConfigError):
        OnnxModel.from_triton_args(ranged(**parameters), graph.parent.parent, "1")


def test_session_options_follow_the_config_and_never_spin():
    options = session_options({"parameters": {"intra_op_thread_count": {"string_value": "2"}}})
    assert options.intra_op_num_threads == 2
    assert options.get_session_config_entry(SPINNING_CONFIG_KEY) == "0"


def test_arena_shrinkage_from_the_config_applies_to_every_run(graph: Path):
    shrinking = config(parameters={ARENA_SHRINKAGE_KEY: {"string_value": "cpu:0"}})
    model = OnnxModel.from_triton_args(shrinking, graph.parent.parent, "1")
    assert model.run_options.get_run_config_entry(ARENA_SHRINKAGE_KEY) == "cpu:0"
    # ONNX Runtime refuses a run that names an arena the session does not have.
    out = model.run({"x": np.ones((8, 3), np.float32)})
    np.testing.assert_array_equal(out["y"], np.full((8, 3), 2.0, np.float32))
    wrong = config(parameters={ARENA_SHRINKAGE_KEY: {"string_value": "gpu:0"}})
    unknown_arena = OnnxModel.from_triton_args(wrong, graph.parent.parent, "1")
    with pytest.raises(Exception, match="arena"):
        unknown_arena.run({"x": np.ones((8, 3), np.float32)})


def test_gpu_instances_ask_for_the_cuda_provider_or_refuse_to_load(monkeypatch):
    from inference_tools import onnx_model

    assert onnx_model.execution_providers("CPU") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnx_model.ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ModelConfigError, match="install onnxruntime-gpu"):
        onnx_model.execution_providers("GPU", 1)
    monkeypatch.setattr(
        onnx_model.ort,
        "get_available_providers",
        lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    assert onnx_model.execution_providers("GPU", 1) == [
        ("CUDAExecutionProvider", {"device_id": 1}),
        "CPUExecutionProvider",
    ]
