"""The Python half of tools/gpu_config_check.sh: runs on the GPU host, with no network.

The host has Python 3.12 with numpy, onnx, onnxruntime (CPU build) and tokenizers, and no
tritonclient or perf_analyzer; everything here needs only those, aiohttp for the load and the
project's python_backend package. Subcommands:

  build-encoder OUT          the encoder graph with random weights of all-MiniLM-L6-v2's shapes
                             (the weights package cannot be fetched there): placement, speed and
                             agreement between devices are checked, not the embeddings' meaning
  embeddings URL REPO        served embeddings (HTTP) against the CPU path in this process: the
                             repository's tokenizer and the same model.onnx on ONNX Runtime's CPU
                             provider; fails under a cosine of MIN_COSINE
  load URL --texts N ...     closed-loop load over HTTP with binary tensors; texts/s and latency
  inprocess REPO             tokenizer + encoder in one process on the CUDA provider, per batch
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import struct
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "serving")]

MODEL = "text_embedding"
MIN_COSINE = 0.999  # FP32 on the GPU against the CPU: kernels differ, the result must not
SENTENCES = (
    "The invoice lists two charges for the same subscription renewal.",
    "After the firmware update the router drops the connection every few minutes.",
    "refund policy",
    "The train to the airport runs every fifteen minutes from the central station.",
    "Backups run every night and are kept for ninety days in a second region.",
    "how to cancel my subscription",
    "Solar panels on the school roof now cover most of its electricity demand.",
    "api rate limit error 429",
)
MINILM_SHAPES = {
    "vocab_size": 30522,
    "hidden_size": 384,
    "num_hidden_layers": 6,
    "num_attention_heads": 12,
    "intermediate_size": 1536,
    "max_position_embeddings": 512,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
}


def random_weights(config: dict, seed: int = 0) -> dict[str, np.ndarray]:
    """Weights under the safetensors names bert_onnx reads, drawn like BERT's initialiser."""
    rng = np.random.default_rng(seed)
    hidden, inner = config["hidden_size"], config["intermediate_size"]
    weights: dict[str, np.ndarray] = {}

    def normal(name: str, *shape: int) -> None:
        weights[name] = (rng.standard_normal(shape) * 0.02).astype(np.float32)

    def layer_norm(prefix: str) -> None:
        weights[f"{prefix}.weight"] = np.ones(hidden, np.float32)
        weights[f"{prefix}.bias"] = np.zeros(hidden, np.float32)

    normal("embeddings.word_embeddings.weight", config["vocab_size"], hidden)
    normal("embeddings.position_embeddings.weight", config["max_position_embeddings"], hidden)
    normal("embeddings.token_type_embeddings.weight", config["type_vocab_size"], hidden)
    layer_norm("embeddings.LayerNorm")
    for index in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{index}"
        for name in ("attention.self.query", "attention.self.key", "attention.self.value"):
            normal(f"{p}.{name}.weight", hidden, hidden)
            normal(f"{p}.{name}.bias", hidden)
        normal(f"{p}.attention.output.dense.weight", hidden, hidden)
        normal(f"{p}.attention.output.dense.bias", hidden)
        normal(f"{p}.intermediate.dense.weight", inner, hidden)
        normal(f"{p}.intermediate.dense.bias", inner)
        normal(f"{p}.output.dense.weight", hidden, inner)
        normal(f"{p}.output.dense.bias", hidden)
        layer_norm(f"{p}.attention.output.LayerNorm")
        layer_norm(f"{p}.output.LayerNorm")
    return weights


def build_encoder(out: Path) -> None:
    from inference_tools.bert_onnx import build_bert_encoder

    build_bert_encoder(random_weights(MINILM_SHAPES), MINILM_SHAPES, out)
    print(f"built {out} ({out.stat().st_size / 2**20:.1f} MiB, random weights)")


def _tokenizer(repository: Path):
    from python_backend.tokenization import TextTokenizer

    return TextTokenizer(repository / "tokenizer" / "1" / "tokenizer.json")


def _session(repository: Path, providers: list):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    path = repository / "minilm" / "1" / "model.onnx"
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def _embed(session, tokenizer, texts) -> np.ndarray:
    batch = tokenizer.pad(tokenizer.encode(texts))
    feeds = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    return session.run(["sentence_embedding"], feeds)[0]


def binary_request(texts: list[str]) -> tuple[bytes, dict[str, str]]:
    """A KServe v2 request with the TEXT tensor in Triton's binary tensor extension."""
    raw = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in texts)
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "TEXT",
                    "shape": [len(texts), 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": "EMBEDDING", "parameters": {"binary_data": True}}],
        }
    ).encode()
    headers = {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }
    return header + raw, headers


def parse_binary_response(body: bytes, header_length: int) -> np.ndarray:
    header = json.loads(body[:header_length])
    (output,) = header["outputs"]
    values = np.frombuffer(body[header_length:], dtype=np.float32)
    return values.reshape(output["shape"])


def infer(url: str, texts: list[str]) -> np.ndarray:
    body, headers = binary_request(texts)
    request = urllib.request.Request(
        f"http://{url}/v2/models/{MODEL}/infer", data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        length = int(response.headers["Inference-Header-Content-Length"])
        return parse_binary_response(response.read(), length)


def check_embeddings(url: str, repository: Path) -> int:
    texts = list(SENTENCES)
    served = infer(url, texts)
    expected = _embed(_session(repository, ["CPUExecutionProvider"]), _tokenizer(repository), texts)
    cosine = np.sum(served * expected, axis=1) / (
        np.linalg.norm(served, axis=1) * np.linalg.norm(expected, axis=1)
    )
    worst = float(cosine.min())
    verdict = "ok" if worst >= MIN_COSINE else "MISMATCH"
    print(f"embeddings served vs CPU path: {served.shape}, worst cosine {worst:.6f} {verdict}")
    return 0 if worst >= MIN_COSINE else 1


async def _load(url: str, texts: int, concurrency: int, seconds: float) -> dict[str, float]:
    import aiohttp

    rng = random.Random(0)
    bodies = [binary_request([rng.choice(SENTENCES) for _ in range(texts)]) for _ in range(64)]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    target = f"http://{url}/v2/models/{MODEL}/infer"

    async def client(session, index: int) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            body, headers = bodies[(index + len(latencies)) % len(bodies)]
            started = time.perf_counter()
            async with session.post(target, data=body, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    errors += 1
                    continue
            latencies.append(time.perf_counter() - started)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(session, i) for i in range(concurrency)))
    values = np.array(latencies) * 1000
    return {
        "texts_per_s": len(latencies) * texts / seconds,
        "p50_ms": float(np.percentile(values, 50)) if len(values) else float("nan"),
        "p99_ms": float(np.percentile(values, 99)) if len(values) else float("nan"),
        "errors": errors,
    }


def load(url: str, texts: int, concurrency: list[int], seconds: float) -> int:
    for level in concurrency:
        asyncio.run(_load(url, texts, level, 2.0))  # warm-up, not counted
        result = asyncio.run(_load(url, texts, level, seconds))
        print(
            f"served, {texts} text(s) per request, concurrency {level}: "
            f"{result['texts_per_s']:.0f} texts/s, p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms, errors {result['errors']}"
        )
    return 0


def inprocess(repository: Path, batches: list[int], seconds: float) -> int:
    import onnxruntime as ort

    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"no CUDA provider in this onnxruntime ({ort.__file__})", file=sys.stderr)
        return 1
    session, tokenizer = _session(repository, providers), _tokenizer(repository)
    rng = random.Random(0)
    for batch in batches:
        texts = [rng.choice(SENTENCES) for _ in range(batch)]
        _embed(session, tokenizer, texts)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            _embed(session, tokenizer, texts)
            done += batch
        rate = done / (time.perf_counter() - started)
        print(f"in-process, CUDA provider, batch {batch}: {rate:.0f} texts/s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-encoder")
    build.add_argument("out", type=Path)
    embeddings = commands.add_parser("embeddings")
    embeddings.add_argument("url")
    embeddings.add_argument("repository", type=Path)
    load_parser = commands.add_parser("load")
    load_parser.add_argument("url")
    load_parser.add_argument("--texts", type=int, default=1)
    load_parser.add_argument("--concurrency", default="1,16,64")
    load_parser.add_argument("--seconds", type=float, default=10.0)
    local = commands.add_parser("inprocess")
    local.add_argument("repository", type=Path)
    local.add_argument("--batches", default="1,32,128,256")
    local.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.command == "build-encoder":
        build_encoder(args.out)
        return 0
    if args.command == "embeddings":
        return check_embeddings(args.url, args.repository)
    if args.command == "load":
        levels = [int(c) for c in args.concurrency.split(",")]
        return load(args.url, args.texts, levels, args.seconds)
    return inprocess(args.repository, [int(b) for b in args.batches.split(",")], args.seconds)


if __name__ == "__main__":
    sys.exit(main())
