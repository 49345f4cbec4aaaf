"""Validation refuses what Triton would refuse, before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from inference_tools.model_config import ModelConfigSyntaxError, parse_model_config
from inference_tools.publishing.onnx_config import config_text_from_onnx
from inference_tools.publishing.publisher import order_for_publishing
from inference_tools.publishing.sources import ModelSourceError, read_model_source
from inference_tools.publishing.validation import ModelValidationError, validate_source

from tests.publishing.models import (
    SCALER_CONFIG,
    ensemble_folder,
    python_folder,
    scaler_folder,
    scaler_graph,
)


def validate(path: Path, available: dict | None = None, name: str | None = None) -> None:
    validate_source(read_model_source(path, name), available or {})


def test_a_matching_onnx_model_passes(tmp_path: Path):
    validate(scaler_folder(tmp_path, "scaler", 2.0))


def test_a_file_that_is_not_onnx_fails_the_checker(tmp_path: Path):
    folder = scaler_folder(tmp_path, "scaler", 2.0)
    (folder / "1" / "model.onnx").write_bytes(b"\x08\x07garbage that is no graph")
    message = r"model 'scaler': model\.onnx fails onnx\.checker"
    with pytest.raises(ModelValidationError, match=message):
        validate(folder)


def test_an_invalid_graph_fails_the_checker(tmp_path: Path):
    import onnx
    from onnx import TensorProto, helper

    folder = scaler_folder(tmp_path, "scaler", 2.0)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    # "NoSuchOp" is not an operator of the default domain.
    graph = helper.make_graph([helper.make_node("NoSuchOp", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, folder / "1" / "model.onnx")
    with pytest.raises(ModelValidationError, match=r"fails onnx\.checker"):
        validate(folder)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('name: "x"', 'name: "input0"'), r"input 'input0' in the config is not an input"),
        (
            ("TYPE_FP32, dims: [ 3 ] } ]\noutput", "TYPE_INT64, dims: [ 3 ] } ]\noutput"),
            r"input 'x': data_type TYPE_INT64 in the config, but the ONNX graph has tensor",
        ),
        (
            ("dims: [ 3 ] } ]\noutput", "dims: [ 4 ] } ]\noutput"),
            r"input 'x': dims\[0\] is 4 in the config, but the ONNX graph fixes it to 3",
        ),
        (('name: "y"', 'name: "z"'), r"output 'z' in the config is not an output"),
    ],
)
def test_a_config_that_does_not_match_the_graph_is_refused(tmp_path: Path, edit, message):
    config = SCALER_CONFIG.format(name="scaler").replace(*edit)
    folder = scaler_folder(tmp_path, "scaler", 2.0, config=config)
    with pytest.raises(ModelValidationError, match=message):
        validate(folder)


def test_batching_needs_a_dynamic_first_dimension(tmp_path: Path):
    folder = scaler_folder(tmp_path, "scaler", 2.0)
    scaler_graph(folder / "1" / "model.onnx", 2.0, batch_dim=4)
    with pytest.raises(ModelValidationError, match="needs a dynamic first dimension"):
        validate(folder)


def test_an_unknown_config_field_names_the_line(tmp_path: Path):
    config = SCALER_CONFIG.format(name="scaler") + "dynamic_bathcing { }\n"
    folder = scaler_folder(tmp_path, "scaler", 2.0, config=config)
    with pytest.raises(ModelConfigSyntaxError, match=r"config\.pbtxt:8:1 .*dynamic_bathcing"):
        read_model_source(folder)


def test_a_bare_onnx_file_gets_a_config_from_its_graph(tmp_path: Path):
    graph = scaler_graph(tmp_path / "doubler.onnx", 2.0)
    text = config_text_from_onnx(graph, "doubler")
    config = parse_model_config(text)
    assert config.backend == "onnxruntime" and config.max_batch_size == 8
    assert [(i.name, list(i.dims)) for i in config.input] == [("x", [3])]
    assert [(o.name, list(o.dims)) for o in config.output] == [("y", [3])]
    source = read_model_source(graph)
    assert source.name == "doubler" and set(source.files) == {"model.onnx"}
    validate_source(source, {})
    # A fixed first dimension means no batching: the whole shape goes into dims.
    fixed = parse_model_config(
        config_text_from_onnx(scaler_graph(tmp_path / "fixed.onnx", 1.0, 1), "fixed")
    )
    assert fixed.max_batch_size == 0 and list(fixed.input[0].dims) == [1, 3]


def test_a_config_name_is_replaced_by_the_given_name(tmp_path: Path):
    source = read_model_source(scaler_folder(tmp_path, "scaler", 2.0), name="renamed")
    assert source.config.name == "renamed"
    assert source.config_text.startswith("# y = x * factor")


def test_python_model_must_compile_and_define_execute(tmp_path: Path):
    validate(python_folder(tmp_path, "adder", 1.0))
    broken = python_folder(tmp_path, "adder", 1.0, initialize="return (", tag="-syntax")
    with pytest.raises(ModelValidationError, match=r"model 'adder': .*model\.py:\d+"):
        validate(broken)
    no_execute = python_folder(tmp_path, "adder", 1.0, tag="-noexec")
    model_py = no_execute / "1" / "model.py"
    model_py.write_text(model_py.read_text().replace("def execute", "def run"))
    with pytest.raises(ModelValidationError, match="TritonPythonModel with an execute"):
        validate(no_execute)


def test_a_folder_without_versions_is_refused_unless_it_is_an_ensemble(tmp_path: Path):
    folder = tmp_path / "empty"
    folder.mkdir()
    (folder / "config.pbtxt").write_text(SCALER_CONFIG.format(name="empty"))
    with pytest.raises(ModelSourceError, match="no version folder"):
        read_model_source(folder)
    read_model_source(ensemble_folder(tmp_path, "pipeline", "a", "b"))


def _configs(tmp_path: Path, **models: Path) -> dict:
    return {name: read_model_source(path).config for name, path in models.items()}


def test_ensemble_steps_must_exist_and_line_up(tmp_path: Path):
    scaler = scaler_folder(tmp_path, "scaler", 2.0)
    adder = python_folder(tmp_path, "adder", 1.0)
    available = _configs(tmp_path, scaler=scaler, adder=adder)
    validate(ensemble_folder(tmp_path, "pipeline", "scaler", "adder"), available)

    with pytest.raises(ModelValidationError, match="step model 'missing' is neither in the store"):
        validate(ensemble_folder(tmp_path / "m", "pipeline", "scaler", "missing"), available)

    wrong_type = SCALER_CONFIG.format(name="ints").replace("TYPE_FP32", "TYPE_INT32")
    available["ints"] = parse_model_config(wrong_type)
    with pytest.raises(
        ModelValidationError, match=r"tensor 'middle' is TYPE_FP32 but the model's input 'x'"
    ):
        validate(ensemble_folder(tmp_path / "t", "pipeline", "scaler", "ints"), available)

    renamed = ensemble_folder(tmp_path / "r", "pipeline", "scaler", "adder")
    config = renamed / "config.pbtxt"
    text = config.read_text().replace('key: "y", value: "middle"', 'key: "out", value: "middle"')
    config.write_text(text)
    with pytest.raises(ModelValidationError, match="output_map key 'out' is not an output"):
        validate(renamed, available)


def test_composing_models_are_published_before_their_ensemble(tmp_path: Path):
    sources = [
        read_model_source(ensemble_folder(tmp_path, "pipeline", "scaler", "adder")),
        read_model_source(python_folder(tmp_path, "adder", 1.0)),
        read_model_source(scaler_folder(tmp_path, "scaler", 2.0)),
    ]
    assert [s.name for s in order_for_publishing(sources)] == ["scaler", "adder", "pipeline"]
