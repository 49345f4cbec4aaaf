"""Small models for the publishing tests: built here in a few milliseconds, loaded in seconds."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from onnx import TensorProto, helper

SCALER_CONFIG = """\
# y = x * factor, for x FP32 [batch, 3]
name: "{name}"
backend: "onnxruntime"
max_batch_size: 8
input [ {{ name: "x", data_type: TYPE_FP32, dims: [ 3 ] }} ]
output [ {{ name: "y", data_type: TYPE_FP32, dims: [ 3 ] }} ]
instance_group [ {{ count: 1 }} ]
"""

PYTHON_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 8
input [ {{ name: "x", data_type: TYPE_FP32, dims: [ 3 ] }} ]
output [ {{ name: "y", data_type: TYPE_FP32, dims: [ 3 ] }} ]
instance_group [ {{ count: 1 }} ]
"""

PYTHON_MODEL = """\
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        {initialize}

    def execute(self, requests):
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "x").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("y", x + {offset})]))
        return responses
"""

ENSEMBLE_CONFIG = """\
name: "{name}"
platform: "ensemble"
max_batch_size: 8
input [ {{ name: "IN", data_type: TYPE_FP32, dims: [ 3 ] }} ]
output [ {{ name: "OUT", data_type: TYPE_FP32, dims: [ 3 ] }} ]
ensemble_scheduling {{
  step [
    {{
      model_name: "{first}"
      model_version: -1
      input_map {{ key: "x", value: "IN" }}
      output_map {{ key: "y", value: "middle" }}
    }},
    {{
      model_name: "{second}"
      model_version: -1
      input_map {{ key: "x", value: "middle" }}
      output_map {{ key: "y", value: "OUT" }}
    }}
  ]
}}
"""


def scaler_graph(path: Path, factor: float, batch_dim: int | str = "batch") -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch_dim, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch_dim, 3])
    k = helper.make_tensor("factor", TensorProto.FLOAT, [], [factor])
    graph = helper.make_graph([helper.make_node("Mul", ["x", "factor"], ["y"])], "s", [x], [y], [k])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def scaler_folder(root: Path, name: str, factor: float, config: str | None = None) -> Path:
    """A model folder as in model_repository/: config.pbtxt and 1/model.onnx."""
    folder = root / f"{name}-x{factor:g}"
    scaler_graph(folder / "1" / "model.onnx", factor)
    (folder / "config.pbtxt").write_text(config or SCALER_CONFIG.format(name=name))
    return folder


def python_folder(
    root: Path, name: str, offset: float = 0.0, initialize: str = "pass", tag: str = ""
) -> Path:
    folder = root / f"{name}-python{tag}"
    (folder / "1").mkdir(parents=True)
    (folder / "1" / "model.py").write_text(
        PYTHON_MODEL.format(initialize=initialize, offset=float(offset))
    )
    (folder / "config.pbtxt").write_text(PYTHON_CONFIG.format(name=name))
    return folder


def ensemble_folder(root: Path, name: str, first: str, second: str) -> Path:
    folder = root / f"{name}-ensemble"
    folder.mkdir(parents=True)
    (folder / "config.pbtxt").write_text(
        ENSEMBLE_CONFIG.format(name=name, first=first, second=second)
    )
    return folder


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under `root` with its sha256: equal before and after means nothing changed."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }
