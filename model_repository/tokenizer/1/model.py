"""`tokenizer`: glue between Triton and python_backend.tokenizer_model."""

from pathlib import Path

import triton_python_backend_utils as pb_utils

from python_backend.tokenizer_model import TEXT_INPUT, TokenizerModel
from python_backend.triton_glue import output_dtypes, respond, string_parameters


class TritonPythonModel:
    def initialize(self, args):
        config_json = args["model_config"]
        version_dir = Path(args["model_repository"]) / args["model_version"]
        self.model = TokenizerModel.from_parameters(
            version_dir, output_dtypes(config_json), string_parameters(config_json)
        )

    def execute(self, requests):
        texts = [pb_utils.get_input_tensor_by_name(r, TEXT_INPUT).as_numpy() for r in requests]
        return respond(self.model.run(texts))
