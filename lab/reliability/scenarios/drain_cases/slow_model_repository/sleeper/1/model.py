"""Sleep `execute_seconds` per batch, then answer Y = X + 1 for every request."""

import json
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        parameters = json.loads(args["model_config"])["parameters"]
        self.execute_seconds = float(parameters["execute_seconds"]["string_value"])

    def execute(self, requests):
        time.sleep(self.execute_seconds)
        responses = []
        for request in requests:
            x = pb_utils.get_input_tensor_by_name(request, "X").as_numpy()
            responses.append(pb_utils.InferenceResponse([pb_utils.Tensor("Y", x + 1)]))
        return responses
