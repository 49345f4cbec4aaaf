"""The second served model: a handwritten-digit classifier trained from data scikit-learn ships.

scikit-learn bundles the UCI optical-recognition digits (1,797 images of 8x8 pixels, values
0..16, ten classes). This module splits them once with a fixed seed (80 % train, 20 % held
out, stratified), trains a small multi-layer perceptron on the train part (64 inputs, one
hidden ReLU layer, softmax over ten classes; fixed seed, so the weights are the same on every
build on the same platform) and writes it as a plain ONNX graph built with `onnx` alone:

    PIXELS [n, 64] FP32 -> Gemm -> Relu -> Gemm -> Softmax -> PROBABILITIES [n, 10] FP32
                                                   \\-> ArgMax -> LABEL [n, 1] INT64

The standardisation the network was trained with (per-pixel mean and scale of the train part)
is folded into the first Gemm, so clients send the raw pixel values. The held-out part is what
the accuracy tests send to the real server.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inference_tools.atomic_files import write_bytes_atomically
from inference_tools.bert_onnx import IR_VERSION, OPSET, save_model_atomically

log = logging.getLogger(__name__)

MODEL_NAME = "digits"
MODEL_FILE = Path(f"{MODEL_NAME}/1/model.onnx")
STAMP_FILE = Path(f".build-stamp-{MODEL_NAME}.json")
PIXELS = "PIXELS"
PROBABILITIES = "PROBABILITIES"
LABEL = "LABEL"
PIXEL_COUNT = 64
CLASS_COUNT = 10
HELD_OUT_FRACTION = 0.2
SEED = 0
HIDDEN_UNITS = 64
MAX_ITERATIONS = 500
# Bump when the training or the graph changes, so that stamped builds are redone.
BUILDER_VERSION = "1"


@dataclass(frozen=True)
class DigitsSplit:
    train_pixels: np.ndarray  # [n, 64] float32, raw values 0..16
    train_labels: np.ndarray  # [n] int64
    held_out_pixels: np.ndarray
    held_out_labels: np.ndarray


def load_split() -> DigitsSplit:
    """scikit-learn's bundled digits, split as the build splits them (read from the package)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = digits.data.astype(np.float32)
    labels = digits.target.astype(np.int64)
    train_x, held_x, train_y, held_y = train_test_split(
        pixels, labels, test_size=HELD_OUT_FRACTION, random_state=SEED, stratify=labels
    )
    return DigitsSplit(train_x, train_y, held_x, held_y)


def train_weights(split: DigitsSplit) -> dict[str, np.ndarray]:
    """Fit the perceptron; return its layers with the standardisation folded into the first."""
    from sklearn.neural_network import MLPClassifier

    train = split.train_pixels.astype(np.float64)
    mean = train.mean(axis=0)
    scale = train.std(axis=0)
    scale[scale == 0] = 1.0  # pixels that are 0 in every training image
    network = MLPClassifier(
        hidden_layer_sizes=(HIDDEN_UNITS,), random_state=SEED, max_iter=MAX_ITERATIONS
    ).fit((train - mean) / scale, split.train_labels)
    if list(network.classes_) != list(range(CLASS_COUNT)):
        raise RuntimeError(f"expected classes 0..9, the network has {network.classes_}")
    hidden_weights, output_weights = network.coefs_
    hidden_bias, output_bias = network.intercepts_
    # W1 . ((x - mean) / scale) + b1  ==  (W1 / scale) . x + (b1 - (mean / scale) . W1)
    folded_weights = hidden_weights / scale[:, None]
    folded_bias = hidden_bias - (mean / scale) @ hidden_weights
    return {
        "hidden.weight": folded_weights.astype(np.float32),
        "hidden.bias": folded_bias.astype(np.float32),
        "output.weight": output_weights.astype(np.float32),
        "output.bias": output_bias.astype(np.float32),
    }


def build_graph(weights: Mapping[str, np.ndarray]) -> onnx.ModelProto:
    nodes = [
        helper.make_node("Gemm", [PIXELS, "hidden.weight", "hidden.bias"], ["hidden.linear"]),
        helper.make_node("Relu", ["hidden.linear"], ["hidden"]),
        helper.make_node("Gemm", ["hidden", "output.weight", "output.bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], [PROBABILITIES], axis=-1),
        helper.make_node("ArgMax", ["logits"], [LABEL], axis=-1, keepdims=1),
    ]
    graph = helper.make_graph(
        nodes,
        MODEL_NAME,
        inputs=[helper.make_tensor_value_info(PIXELS, TensorProto.FLOAT, ["batch", PIXEL_COUNT])],
        outputs=[
            helper.make_tensor_value_info(PROBABILITIES, TensorProto.FLOAT, ["batch", CLASS_COUNT]),
            helper.make_tensor_value_info(LABEL, TensorProto.INT64, ["batch", 1]),
        ],
        initializer=[numpy_helper.from_array(array, name) for name, array in weights.items()],
    )
    model = helper.make_model(
        graph,
        producer_name="inference-tools build-models",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def build_inputs() -> dict[str, str]:
    """What the model depends on; the stamp compares it to decide whether to rebuild."""
    from sklearn.datasets import load_digits

    raw = load_digits().data
    return {
        "builder_version": BUILDER_VERSION,
        "data_sha256": hashlib.sha256(np.ascontiguousarray(raw).tobytes()).hexdigest(),
        "scikit_learn": version("scikit-learn"),
    }


def _sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_digits_classifier(model_repository: Path, force: bool = False) -> bool:
    """Train and write digits/1/model.onnx; False if the stamp says it is up to date."""
    # scikit-learn is an extra: a team whose repository has no digits model never needs it.
    if importlib.util.find_spec("sklearn") is None:
        raise RuntimeError(
            "the digits classifier is trained with scikit-learn, an extra of this package: "
            "pip install 'scalable-inference-server[digits]'"
        )
    started = time.monotonic()
    model_path = model_repository / MODEL_FILE
    stamp_path = model_repository / STAMP_FILE
    inputs = build_inputs()
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamp = {}
    if (
        not force
        and stamp.get("inputs") == inputs
        and model_path.is_file()
        and stamp.get("outputs", {}).get(str(MODEL_FILE)) == _sha256_file(model_path)
    ):
        log.info("The digits classifier in %s is up to date", model_repository)
        return False
    split = load_split()
    log.info(
        "Training the digits classifier on %d images (%d held out)",
        len(split.train_labels),
        len(split.held_out_labels),
    )
    save_model_atomically(build_graph(train_weights(split)), model_path)
    stamp = {
        "description": "What `inference-tools build-models` built from; delete to force a rebuild.",
        "inputs": inputs,
        "outputs": {str(MODEL_FILE): _sha256_file(model_path)},
    }
    write_bytes_atomically(
        stamp_path, (json.dumps(stamp, indent=2, sort_keys=True) + "\n").encode()
    )
    log.info("Wrote %s in %.1f s", model_path, time.monotonic() - started)
    return True
