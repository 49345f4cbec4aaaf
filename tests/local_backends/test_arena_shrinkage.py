"""The encoder gives back the memory a large batch took, as its config asks.

Each measurement runs in a fresh process: the resident memory a process keeps after one batch of
8 texts of 256 tokens, with the shipped config and with its arena-shrinkage parameter removed.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

MEASURE = """
import sys
from pathlib import Path
import numpy as np
from inference_tools.model_config import config_as_dict, read_model_config
from inference_tools.onnx_model import ARENA_SHRINKAGE_KEY, OnnxModel

def rss_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

repository = Path(sys.argv[1])
config = config_as_dict(read_model_config(repository / "minilm" / "config.pbtxt"))
if sys.argv[2] == "without":
    config["parameters"].pop(ARENA_SHRINKAGE_KEY)
model = OnnxModel(config, repository / "minilm" / "1" / "model.onnx")
ones = lambda rows, length: np.ones((rows, length), np.int64)
model.run({"input_ids": 1000 * ones(1, 16), "attention_mask": ones(1, 16)})
before = rss_bytes()
model.run({"input_ids": 1000 * ones(8, 256), "attention_mask": ones(8, 256)})
print(rss_bytes() - before)
"""


def kept_after_batch_bytes(model_repository, shrinkage: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(model_repository), shrinkage],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return int(result.stdout.strip())


@pytest.mark.slow
def test_the_encoder_config_gives_back_what_a_large_batch_took(model_repository):
    kept_with = kept_after_batch_bytes(model_repository, "with")
    kept_without = kept_after_batch_bytes(model_repository, "without")
    # Measured: about 6 MiB kept with shrinkage, 71 MiB without.
    assert kept_without > 32 * 2**20, kept_without
    assert kept_with < kept_without / 4, (kept_with, kept_without)
