"""A model repository the project has never seen: its own names, two ensembles, a plain model.

- `upper` (Python): WORDS -> LOUD, upper-cased, after `delay_ms` so that requests can queue;
- `length` (Python): LOUD -> CHARS, the byte length of each text;
- `shout` (ensemble): upper;
- `shout_length` (ensemble): upper -> length;
- `doubler` (ONNX, plain): x FP32 [4] -> y = 2x.

Nothing in the project knows these names: what it does with them comes from the configs.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper

ENSEMBLES = ("shout", "shout_length")
COMPOSING = ("length", "upper")
PLAIN = "doubler"
ENTRY_MODELS = ("doubler", "shout", "shout_length")

_PYTHON_MODEL = """\
import time

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        import json

        parameters = json.loads(args["model_config"]).get("parameters", {{}})
        self.delay_s = float(parameters.get("delay_ms", {{}}).get("string_value", "0")) / 1000

    def execute(self, requests):
        time.sleep(self.delay_s)
        responses = []
        for request in requests:
            texts = pb_utils.get_input_tensor_by_name(request, "{source}").as_numpy()
            out = {transform}
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("{target}", out)]))
        return responses
"""

_PYTHON_CONFIG = """\
name: "{name}"
backend: "python"
max_batch_size: 16
input [ {{ name: "{source}", data_type: TYPE_STRING, dims: [ 1 ] }} ]
output [ {{ name: "{target}", data_type: {target_type}, dims: [ 1 ] }} ]
dynamic_batching {{ }}
instance_group [ {{ count: 1 }} ]
parameters {{ key: "delay_ms", value: {{ string_value: "{delay_ms}" }} }}
"""

_ENSEMBLE_CONFIG = """\
name: "{name}"
platform: "ensemble"
max_batch_size: 16
input [ {{ name: "WORDS", data_type: TYPE_STRING, dims: [ 1 ] }} ]
output [ {{ name: "{output}", data_type: {output_type}, dims: [ 1 ] }} ]
ensemble_scheduling {{
  step [
{steps}
  ]
}}
"""

_STEP = """\
    {{
      model_name: "{model}"
      model_version: -1
      input_map {{ key: "{key_in}", value: "{value_in}" }}
      output_map {{ key: "{key_out}", value: "{value_out}" }}
    }}"""

_DOUBLER_CONFIG = """\
name: "doubler"
backend: "onnxruntime"
max_batch_size: 16
input [ { name: "x", data_type: TYPE_FP32, dims: [ 4 ] } ]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 4 ] } ]
dynamic_batching { }
instance_group [ { count: 1 } ]
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _python_model(
    root: Path, name: str, source: str, target: str, target_type: str, transform: str, delay_ms: int
) -> None:
    _write(
        root / name / "config.pbtxt",
        _PYTHON_CONFIG.format(
            name=name, source=source, target=target, target_type=target_type, delay_ms=delay_ms
        ),
    )
    _write(
        root / name / "1" / "model.py",
        _PYTHON_MODEL.format(source=source, target=target, transform=transform),
    )


def _doubler(root: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "doubler",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    (root / "doubler" / "1").mkdir(parents=True)
    onnx.save_model(model, str(root / "doubler" / "1" / "model.onnx"))
    _write(root / "doubler" / "config.pbtxt", _DOUBLER_CONFIG)


def build_foreign_repository(root: Path, upper_delay_ms: int = 0) -> Path:
    _python_model(
        root,
        "upper",
        "WORDS",
        "LOUD",
        "TYPE_STRING",
        "np.array([[t[0].upper()] for t in texts], dtype=np.object_)",
        upper_delay_ms,
    )
    _python_model(
        root,
        "length",
        "LOUD",
        "CHARS",
        "TYPE_INT32",
        "np.array([[len(t[0])] for t in texts], dtype=np.int32)",
        0,
    )
    shout_steps = _STEP.format(
        model="upper", key_in="WORDS", value_in="WORDS", key_out="LOUD", value_out="LOUD"
    )
    length_steps = ",\n".join(
        [
            shout_steps,
            _STEP.format(
                model="length", key_in="LOUD", value_in="LOUD", key_out="CHARS", value_out="CHARS"
            ),
        ]
    )
    for name, output, output_type, steps in (
        ("shout", "LOUD", "TYPE_STRING", shout_steps),
        ("shout_length", "CHARS", "TYPE_INT32", length_steps),
    ):
        _write(
            root / name / "config.pbtxt",
            _ENSEMBLE_CONFIG.format(name=name, output=output, output_type=output_type, steps=steps),
        )
        # An ensemble needs a version folder, even an empty one.
        (root / name / "1").mkdir(parents=True)
    _doubler(root)
    return root
