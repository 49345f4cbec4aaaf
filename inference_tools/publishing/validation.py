"""Checks a model must pass before anything is written to the store.

Each check raises `ModelValidationError` with a message that names the model and what to fix.
ONNX configs are checked against the graph by `inference_tools.onnx_model.OnnxModel`, the same
code that refuses them when the local server loads them.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from typing import Any

import onnx
from tritonclient.grpc import model_config_pb2

from inference_tools.model_config import config_as_dict
from inference_tools.onnx_model import DEFAULT_MODEL_FILENAME, ModelConfigError, OnnxModel
from inference_tools.publishing.sources import ModelSource

PYTHON_MODEL_FILENAME = "model.py"


class ModelValidationError(ValueError):
    pass


def _type_name(data_type: int) -> str:
    return model_config_pb2.DataType.Name(data_type)


def check_onnx(source: ModelSource) -> None:
    filename = source.config.default_model_filename or DEFAULT_MODEL_FILENAME
    path = source.files.get(filename)
    if path is None:
        raise ModelValidationError(
            f"model '{source.name}': the version folder has no {filename} "
            f"(it has {sorted(source.files) or 'no files'})"
        )
    try:
        # By path, so that graphs over 2 GB (external data) are checked too.
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as error:  # the checker raises ValidationError, DecodeError, InferenceError
        raise ModelValidationError(
            f"model '{source.name}': {filename} fails onnx.checker: {error}"
        ) from error
    try:
        OnnxModel(config_as_dict(source.config), path)
    except ModelConfigError as error:
        raise ModelValidationError(str(error)) from error


def _defines_execute(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "TritonPythonModel":
            return any(
                isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name == "execute"
                for item in node.body
            )
    return False


def check_python(source: ModelSource) -> None:
    filename = source.config.default_model_filename or PYTHON_MODEL_FILENAME
    path = source.files.get(filename)
    if path is None:
        raise ModelValidationError(f"model '{source.name}': the version folder has no {filename}")
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
        compile(tree, str(path), "exec")
    except SyntaxError as error:
        raise ModelValidationError(
            f"model '{source.name}': {path}:{error.lineno}: {error.msg}"
        ) from error
    if not _defines_execute(tree):
        raise ModelValidationError(
            f"model '{source.name}': {path} must define class TritonPythonModel with an "
            "execute(self, requests) method"
        )


def _tensor_types(entries: Any) -> dict[str, int]:
    return {entry.name: entry.data_type for entry in entries}


def check_ensemble(source: ModelSource, available: Mapping[str, Any]) -> None:
    """Every step names a known model and tensors keep their names and types step to step.

    `available` maps model names to their configs: the models in the store and those published
    in the same call. Steps run in data order, not listing order, as in Triton.
    """
    where = f"ensemble '{source.name}'"
    steps = list(source.config.ensemble_scheduling.step)
    if not steps:
        raise ModelValidationError(f"{where}: ensemble_scheduling has no step")
    tensors = _tensor_types(source.config.input)  # ensemble tensor name -> data type
    for step in steps:
        if step.model_name not in available:
            raise ModelValidationError(
                f"{where}: step model '{step.model_name}' is neither in the store nor published "
                "in the same call"
            )
    pending = list(steps)
    while pending:
        runnable = [s for s in pending if all(v in tensors for v in s.input_map.values())]
        if not runnable:
            missing = sorted({v for s in pending for v in s.input_map.values() if v not in tensors})
            raise ModelValidationError(
                f"{where}: tensors {missing} are read by a step but are neither an ensemble "
                "input nor written by another step"
            )
        for step in runnable:
            pending.remove(step)
            _check_step(where, step, available[step.model_name], tensors)
    for name, data_type in _tensor_types(source.config.output).items():
        if name not in tensors:
            raise ModelValidationError(f"{where}: output '{name}' is written by no step")
        if tensors[name] != data_type:
            raise ModelValidationError(
                f"{where}: output '{name}' is {_type_name(data_type)} in the ensemble but the "
                f"step writing it produces {_type_name(tensors[name])}"
            )


def _check_step(where: str, step: Any, config: Any, tensors: dict[str, int]) -> None:
    step_where = f"{where}, step '{step.model_name}'"
    model_inputs = _tensor_types(config.input)
    model_outputs = _tensor_types(config.output)
    for model_input, tensor in step.input_map.items():
        if model_input not in model_inputs:
            raise ModelValidationError(
                f"{step_where}: input_map key '{model_input}' is not an input of the model "
                f"(its inputs are {sorted(model_inputs)})"
            )
        if model_inputs[model_input] != tensors[tensor]:
            raise ModelValidationError(
                f"{step_where}: tensor '{tensor}' is {_type_name(tensors[tensor])} but the "
                f"model's input '{model_input}' is {_type_name(model_inputs[model_input])}"
            )
    unmapped = sorted(
        i.name for i in config.input if not i.optional and i.name not in step.input_map
    )
    if unmapped:
        raise ModelValidationError(f"{step_where}: model inputs {unmapped} are not mapped")
    for model_output, tensor in step.output_map.items():
        if model_output not in model_outputs:
            raise ModelValidationError(
                f"{step_where}: output_map key '{model_output}' is not an output of the model "
                f"(its outputs are {sorted(model_outputs)})"
            )
        tensors[tensor] = model_outputs[model_output]


def validate_source(source: ModelSource, available: Mapping[str, Any]) -> None:
    """Run the checks that apply to the model's backend; `available` is for ensembles."""
    if source.is_ensemble:
        check_ensemble(source, available)
    elif source.is_onnx:
        check_onnx(source)
    elif source.is_python:
        check_python(source)
    # Other backends (TensorRT, PyTorch, ...) are left to the smoke test on a real server.
