"""Python-based `onnxruntime` backend for the CPU-only local server.

Production images run `backend: "onnxruntime"` models with Triton's C++ backend; the tritonserver
that nvidia-pytriton bundles has none, so the local server installs this folder as that backend.
Triton runs it like a Python model, with the ONNX model's own config.
"""

import json
from pathlib import Path

import triton_python_backend_utils as pb_utils
from inference_tools.onnx_model import OnnxModel

from python_backend.triton_glue import respond


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        self.model = OnnxModel.from_triton_args(
            config,
            Path(args["model_repository"]),
            args["model_version"],
            # "CPU" or "GPU": a KIND_GPU instance runs on its device with the CUDA provider.
            instance_kind=args.get("model_instance_kind", "CPU"),
            device_id=int(args.get("model_instance_device_id", 0)),
        )

    def execute(self, requests):
        feeds = [
            {
                name: pb_utils.get_input_tensor_by_name(r, name).as_numpy()
                for name in self.model.input_names
            }
            for r in requests
        ]
        return respond(self.model.run_batched(feeds))
