"""The digit classifier served beside the embedding: its accuracy on the held-out digits.

The reference is the same ONNX file run in-process with ONNX Runtime on the same images, so the
server must agree with it image for image, and both must classify the held-out fifth of
scikit-learn's digits (never seen in training) at least as well as the build measured.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from inference_tools import digits_classifier
from inference_tools.digits_classifier import LABEL, MODEL_NAME, PIXELS, PROBABILITIES

from tests.clients import PROTOCOLS, infer

pytestmark = pytest.mark.server
# Measured on the held-out 360 images when this model was added (350 right, 97.2 %); a rebuild
# that classifies worse is a regression.
MINIMUM_ACCURACY = 0.95


@pytest.fixture(scope="module")
def held_out() -> digits_classifier.DigitsSplit:
    return digits_classifier.load_split()


@pytest.fixture(scope="module")
def in_process_labels(model_repository, held_out) -> np.ndarray:
    session = ort.InferenceSession(str(model_repository / digits_classifier.MODEL_FILE))
    return session.run([LABEL], {PIXELS: held_out.held_out_pixels})[0][:, 0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_served_digits_match_the_reference_and_its_accuracy(
    connect, protocol, held_out, in_process_labels
):
    client = connect(protocol)
    pixels = held_out.held_out_pixels
    # Requests of several sizes, as clients send them; the batcher may merge them.
    labels = np.concatenate(
        [
            infer(client, protocol, {PIXELS: batch}, model=MODEL_NAME, output=LABEL)[:, 0]
            for batch in np.array_split(pixels, [1, 3, 40, 200])
        ]
    )
    np.testing.assert_array_equal(labels, in_process_labels)
    accuracy = float(np.mean(labels == held_out.held_out_labels))
    assert accuracy >= MINIMUM_ACCURACY, accuracy


def test_probabilities_are_a_distribution_over_ten_digits(connect, held_out):
    probabilities = infer(
        connect("http"),
        "http",
        {PIXELS: held_out.held_out_pixels[:8]},
        model=MODEL_NAME,
        output=PROBABILITIES,
    )
    assert probabilities.shape == (8, 10)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_a_wrong_shape_is_refused_with_a_clear_error(connect):
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    tensor = httpclient.InferInput(PIXELS, [1, 63], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 63), dtype=np.float32))
    with pytest.raises(InferenceServerException, match="64"):
        connect("http").infer(MODEL_NAME, [tensor])
