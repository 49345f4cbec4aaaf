"""`inference-tools build-models`: write the generated files of the Triton model repository."""

from __future__ import annotations

import argparse

from inference_tools import digits_classifier
from inference_tools.commands.options import add_model_repository
from inference_tools.model_artifacts import (
    ENCODER_FILE,
    MODEL_REQUIREMENT,
    TOKENIZER_FILE,
)
from inference_tools.repository_builds import build_repository_models

SUMMARY = "build the encoder, tokenizer and digit classifier files the repository needs"
DESCRIPTION = f"""\
Build the model files that the Triton model repository does not keep in git, from the
all-MiniLM-L6-v2 weights of the installed package {MODEL_REQUIREMENT}:

  {ENCODER_FILE}         the BERT encoder as an ONNX graph (opset 17, FP32)
  {TOKENIZER_FILE}  the WordPiece tokenizer, truncating at 256 tokens

and the second model, a digit classifier trained from the digits scikit-learn ships:

  {digits_classifier.MODEL_FILE}         a small perceptron as an ONNX graph (fixed seed)

The weights' sha256 is checked first. Stamp files (.build-stamp*.json) record what the files
were built from; when nothing changed the command returns at once without writing.
"""
EXAMPLES = """\
Examples:
  inference-tools build-models                  # into model_repository/, if anything changed
  inference-tools build-models --force --model-repository /tmp/repository
"""


def run(args: argparse.Namespace) -> int:
    build_repository_models(args.model_repository, force=args.force)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_repository(parser, help="model repository to write into")
    parser.add_argument(
        "--force",
        action="store_true",
        help="rebuild even when the stamp says the files are up to date",
    )
