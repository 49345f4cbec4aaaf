"""The digit classifier's build: trained from scikit-learn's bundled digits, deterministic,
stamped like the encoder, and a graph that classifies the held-out images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from inference_tools import digits_classifier
from inference_tools.digits_classifier import LABEL, MODEL_FILE, PIXELS, PROBABILITIES, STAMP_FILE


def test_build_is_stamped_deterministic_and_rebuilds_an_edited_file(tmp_path: Path) -> None:
    repository = tmp_path / "repository"
    assert digits_classifier.build_digits_classifier(repository) is True
    first = (repository / MODEL_FILE).read_bytes()
    assert (repository / STAMP_FILE).is_file()
    assert digits_classifier.build_digits_classifier(repository) is False
    assert digits_classifier.build_digits_classifier(repository, force=True) is True
    assert (repository / MODEL_FILE).read_bytes() == first  # same data, same seed, same bytes
    (repository / MODEL_FILE).write_bytes(first[:-10])
    assert digits_classifier.build_digits_classifier(repository) is True
    assert (repository / MODEL_FILE).read_bytes() == first


def test_graph_classifies_the_held_out_digits(tmp_path: Path) -> None:
    digits_classifier.build_digits_classifier(tmp_path)
    session = ort.InferenceSession(str(tmp_path / MODEL_FILE))
    split = digits_classifier.load_split()
    probabilities, labels = session.run([PROBABILITIES, LABEL], {PIXELS: split.held_out_pixels})
    assert probabilities.shape == (360, 10) and labels.shape == (360, 1)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels[:, 0], probabilities.argmax(axis=1))
    assert np.mean(labels[:, 0] == split.held_out_labels) >= 0.95
    # Held out means held out: no image of the test part is in the training part.
    train = {row.tobytes() for row in split.train_pixels}
    assert (
        sum(row.tobytes() in train for row in split.held_out_pixels) <= 3
    )  # duplicates in the data
