"""`pooler`: glue between Triton and python_backend.pooler_model."""

import triton_python_backend_utils as pb_utils

from python_backend.pooler_model import HIDDEN_STATE_INPUT, MASK_INPUT, PoolerModel
from python_backend.triton_glue import output_dtypes, respond, string_parameters


class TritonPythonModel:
    def initialize(self, args):
        config_json = args["model_config"]
        self.model = PoolerModel.from_parameters(
            output_dtypes(config_json), string_parameters(config_json)
        )

    def execute(self, requests):
        inputs = [
            (
                pb_utils.get_input_tensor_by_name(r, HIDDEN_STATE_INPUT).as_numpy(),
                pb_utils.get_input_tensor_by_name(r, MASK_INPUT).as_numpy(),
            )
            for r in requests
        ]
        return respond(self.model.run(inputs))
