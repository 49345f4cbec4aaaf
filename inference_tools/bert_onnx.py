"""Build a BERT encoder as an ONNX graph from its weights, with `onnx` and `numpy` only.

The graph takes `input_ids` and `attention_mask` (INT64 [batch, sequence]) and returns
`sentence_embedding` (FP32 [batch, hidden]): the encoder's last hidden states, mean-pooled over
the real tokens and L2-normalised, as sentence-transformers' Pooling(mean) + Normalize compute
them. Pooling inside the graph keeps the per-token states (sequence x hidden floats per text) in
the encoder's memory, on the GPU where there is one: only the 384 floats of each embedding leave
the model, and the serving path needs no pooling step of its own.

There is no `token_type_ids` input. A sentence embedding encodes one segment, whose token type
is always 0, so the type-0 row of the token-type table is added once into the position table
here. That saves a Gather and an Add per request, and one tensor less travels through every
step of the Triton ensemble.

The graph uses standard operators only, in the shapes PyTorch's BERT export has, so that any
ONNX Runtime (the pip one, the one inside Triton) loads it and its graph optimizer fuses what
pays: MatMul + Add + erf GELU into BiasGelu, the score scaling into FusedMatMul. Measured on
the CPU with ONNX Runtime 1.32 (docs/model-artifacts.md has the figures):
- Declaring the embeddings' symbolic shape would let it also fuse residual Add + LayerNorm into
  SkipLayerNormalization, but that kernel made batch 32 about 15% slower; it is left unfused.
- One merged Q/K/V MatMul was no faster than three, so the weights keep their own tensors.
- A graph with ONNX Runtime's contrib Attention op was about 5% faster, not worth giving up
  standard operators for.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from inference_tools.atomic_files import atomic_output_path
from python_backend.contract import ATTENTION_MASK, INPUT_IDS, SENTENCE_EMBEDDING

# LayerNormalization is a standard operator from opset 17; keep the floor so that older ONNX
# Runtime builds (the one inside the Triton container) load the file too.
OPSET = 17
# IR version 8 belongs to opset 17 (onnx's VERSION_TABLE); newer IR versions are refused by
# the ONNX Runtime releases that Triton containers ship.
IR_VERSION = 8
# Bump when the graph changes for the same weights, so that stamped builds are redone.
BUILDER_VERSION = "3"

# Internal now: the pooling head reads the last layer's token states.
LAST_HIDDEN_STATE = "last_hidden_state"
BATCH_AXIS = "batch"
SEQUENCE_AXIS = "sequence"
# Added to the attention scores of padding tokens: exp() of it underflows to exactly 0 in FP32,
# so padding gets no weight (the value of the original BERT code).
MASKED_SCORE = -10000.0
# sentence-transformers' clamps: a row with no real token pools to zeros instead of NaN.
MIN_TOKEN_COUNT = 1e-9
MIN_NORM = 1e-12
# [UNK] in the WordPiece vocabularies of the BERT family; the builder takes the tokenizer's own.
BERT_UNKNOWN_TOKEN_ID = 100


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    layer_norm_eps: float

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_mapping(cls, config: Mapping) -> BertConfig:
        """Read a Hugging Face `config.json`; refuse variants this builder does not implement."""
        unsupported = {
            "hidden_act": (config.get("hidden_act", "gelu"), "gelu"),
            "position_embedding_type": (
                config.get("position_embedding_type", "absolute"),
                "absolute",
            ),
        }
        for key, (found, supported) in unsupported.items():
            if found != supported:
                raise ValueError(f"config {key}={found!r} is not supported (only {supported!r})")
        built = cls(
            vocab_size=int(config["vocab_size"]),
            hidden_size=int(config["hidden_size"]),
            num_hidden_layers=int(config["num_hidden_layers"]),
            num_attention_heads=int(config["num_attention_heads"]),
            intermediate_size=int(config["intermediate_size"]),
            max_position_embeddings=int(config["max_position_embeddings"]),
            layer_norm_eps=float(config.get("layer_norm_eps", 1e-12)),
        )
        if built.hidden_size % built.num_attention_heads:
            raise ValueError(
                f"hidden_size {built.hidden_size} is not a multiple of "
                f"num_attention_heads {built.num_attention_heads}"
            )
        return built


def build_fingerprint(weights_sha256: str, bert_config: Mapping) -> str:
    """A hash of everything the graph depends on: rebuild when (and only when) it changes."""
    described = {
        "builder_version": BUILDER_VERSION,
        "opset": OPSET,
        "ir_version": IR_VERSION,
        "weights_sha256": weights_sha256,
        "config": asdict(BertConfig.from_mapping(bert_config)),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


class _GraphBuilder:
    """Collects nodes and initializers, naming each output after the node that makes it."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._constants: dict[tuple, str] = {}

    def initializer(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def constant(self, value: float | list[int], dtype: type = np.float32) -> str:
        """A small shared initializer (scalars and shapes), one per distinct value."""
        key = (np.dtype(dtype).str, repr(value))
        if key not in self._constants:
            name = f"const_{len(self._constants)}"
            self._constants[key] = self.initializer(name, np.array(value, dtype=dtype))
        return self._constants[key]

    def node(
        self, op_type: str, inputs: list[str], name: str, output: str | None = None, **attributes
    ) -> str:
        output = output or name
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=name, **attributes))
        return output


def _linear(graph: _GraphBuilder, x: str, weights: Mapping[str, np.ndarray], prefix: str) -> str:
    """`x @ W.T + b` for a torch Linear: weights are stored [out, in], MatMul wants [in, out]."""
    weight = graph.initializer(f"{prefix}.weight", weights[f"{prefix}.weight"].T.astype(np.float32))
    bias = graph.initializer(f"{prefix}.bias", weights[f"{prefix}.bias"].astype(np.float32))
    product = graph.node("MatMul", [x, weight], f"{prefix}/MatMul")
    return graph.node("Add", [product, bias], f"{prefix}/Add")


def _layer_norm(
    graph: _GraphBuilder,
    x: str,
    weights: Mapping,
    prefix: str,
    eps: float,
    output: str | None = None,
) -> str:
    scale = graph.initializer(f"{prefix}.weight", weights[f"{prefix}.weight"].astype(np.float32))
    bias = graph.initializer(f"{prefix}.bias", weights[f"{prefix}.bias"].astype(np.float32))
    return graph.node(
        "LayerNormalization",
        [x, scale, bias],
        f"{prefix}/LayerNorm",
        output=output,
        axis=-1,
        epsilon=eps,
    )


def _gelu(graph: _GraphBuilder, x: str, prefix: str) -> str:
    """Exact GELU, `x * 0.5 * (1 + erf(x / sqrt(2)))`, as BERT's `hidden_act: gelu` computes it."""
    scaled = graph.node("Div", [x, graph.constant(math.sqrt(2.0))], f"{prefix}/Gelu/Div")
    erf = graph.node("Erf", [scaled], f"{prefix}/Gelu/Erf")
    shifted = graph.node("Add", [erf, graph.constant(1.0)], f"{prefix}/Gelu/Add")
    gated = graph.node("Mul", [x, shifted], f"{prefix}/Gelu/Mul")
    return graph.node("Mul", [gated, graph.constant(0.5)], f"{prefix}/Gelu/Half")


def _ids_within_vocabulary(graph: _GraphBuilder, vocabulary_size: int, unknown_id: int) -> str:
    """`input_ids` with every id outside [0, vocabulary_size) replaced by the unknown token.

    Triton's dynamic batcher runs many clients' requests as one session call. An id past the
    table fails the Gather, and so the whole batch: one client sending id 1,000,000 failed
    53-74% of everyone else's requests and the liveness canary with them. Negative ids would
    silently index from the end of the table. Replaced here, in the graph, the batch runs in
    every backend, the C++ one in the image included; the local backend also refuses such
    requests with 400 (config parameter `valid_range.input_ids`).
    """
    at_least_zero = graph.node(
        "GreaterOrEqual", [INPUT_IDS, graph.constant(0, np.int64)], "embeddings/ids/NotNegative"
    )
    below_size = graph.node(
        "Less", [INPUT_IDS, graph.constant(vocabulary_size, np.int64)], "embeddings/ids/InTable"
    )
    valid = graph.node("And", [at_least_zero, below_size], "embeddings/ids/Valid")
    return graph.node(
        "Where", [valid, INPUT_IDS, graph.constant(unknown_id, np.int64)], "embeddings/ids/Where"
    )


def _embeddings(
    graph: _GraphBuilder, weights: Mapping, config: BertConfig, unknown_token_id: int
) -> str:
    word_table = graph.initializer(
        "embeddings.word_embeddings.weight",
        weights["embeddings.word_embeddings.weight"].astype(np.float32),
    )
    # Single-segment input: every token has type 0, so its embedding joins the position table.
    position_and_type = (
        weights["embeddings.position_embeddings.weight"]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    position_table = graph.initializer(
        "embeddings.position_and_type0", position_and_type.astype(np.float32)
    )

    vocabulary_size = weights["embeddings.word_embeddings.weight"].shape[0]
    token_ids = _ids_within_vocabulary(graph, vocabulary_size, unknown_token_id)
    words = graph.node("Gather", [word_table, token_ids], "embeddings/word/Gather", axis=0)
    # Shape with start/end (opset 15+) gives [sequence] directly, as a 1-D tensor for Slice.
    sequence_length = graph.node("Shape", [INPUT_IDS], "embeddings/SequenceLength", start=1, end=2)
    positions = graph.node(
        "Slice",
        [
            position_table,
            graph.constant([0], np.int64),
            sequence_length,
            graph.constant([0], np.int64),
        ],
        "embeddings/position/Slice",
    )
    summed = graph.node("Add", [words, positions], "embeddings/Add")
    return _layer_norm(graph, summed, weights, "embeddings.LayerNorm", config.layer_norm_eps)


def _additive_mask(graph: _GraphBuilder) -> str:
    """[batch, sequence] 1/0 mask -> [batch, 1, 1, sequence] bias: 0 to keep, -10000 to drop."""
    expanded = graph.node(
        "Unsqueeze", [ATTENTION_MASK, graph.constant([1, 2], np.int64)], "mask/Unsqueeze"
    )
    as_float = graph.node("Cast", [expanded], "mask/Cast", to=TensorProto.FLOAT)
    inverted = graph.node("Sub", [graph.constant(1.0), as_float], "mask/Sub")
    return graph.node("Mul", [inverted, graph.constant(MASKED_SCORE)], "mask/Mul")


def _attention(
    graph: _GraphBuilder, x: str, mask: str, weights: Mapping, prefix: str, config: BertConfig
) -> str:
    heads_shape = graph.constant([0, 0, config.num_attention_heads, config.head_size], np.int64)

    def split_heads(name: str, perm: list[int]) -> str:
        projected = _linear(graph, x, weights, f"{prefix}.self.{name}")
        reshaped = graph.node("Reshape", [projected, heads_shape], f"{prefix}.self.{name}/Reshape")
        return graph.node("Transpose", [reshaped], f"{prefix}.self.{name}/Transpose", perm=perm)

    query = split_heads("query", [0, 2, 1, 3])  # [batch, heads, sequence, head_size]
    key = split_heads("key", [0, 2, 3, 1])  # [batch, heads, head_size, sequence]
    value = split_heads("value", [0, 2, 1, 3])

    scores = graph.node("MatMul", [query, key], f"{prefix}.self/Scores")
    scaled = graph.node(
        "Div", [scores, graph.constant(math.sqrt(config.head_size))], f"{prefix}.self/Scale"
    )
    masked = graph.node("Add", [scaled, mask], f"{prefix}.self/Mask")
    probabilities = graph.node("Softmax", [masked], f"{prefix}.self/Softmax", axis=-1)
    context = graph.node("MatMul", [probabilities, value], f"{prefix}.self/Context")
    merged = graph.node(
        "Transpose", [context], f"{prefix}.self/Context/Transpose", perm=[0, 2, 1, 3]
    )
    hidden_shape = graph.constant([0, 0, config.hidden_size], np.int64)
    flat = graph.node("Reshape", [merged, hidden_shape], f"{prefix}.self/Context/Reshape")

    projected = _linear(graph, flat, weights, f"{prefix}.output.dense")
    residual = graph.node("Add", [projected, x], f"{prefix}.output/Residual")
    return _layer_norm(
        graph, residual, weights, f"{prefix}.output.LayerNorm", config.layer_norm_eps
    )


def _feed_forward(
    graph: _GraphBuilder,
    x: str,
    weights: Mapping,
    prefix: str,
    config: BertConfig,
    output: str | None,
) -> str:
    intermediate = _linear(graph, x, weights, f"{prefix}.intermediate.dense")
    activated = _gelu(graph, intermediate, f"{prefix}.intermediate")
    projected = _linear(graph, activated, weights, f"{prefix}.output.dense")
    residual = graph.node("Add", [projected, x], f"{prefix}.output/Residual")
    return _layer_norm(
        graph, residual, weights, f"{prefix}.output.LayerNorm", config.layer_norm_eps, output=output
    )


def _mean_pool_normalize(graph: _GraphBuilder, token_states: str) -> str:
    """[batch, sequence, hidden] states -> [batch, hidden] unit vectors, padding left out.

    The masked sum is one batched MatMul of the [batch, 1, sequence] mask with the states, so
    no masked copy of the states is made.
    """
    mask = graph.node("Cast", [ATTENTION_MASK], "pooling/Mask/Cast", to=TensorProto.FLOAT)
    mask_row = graph.node(
        "Unsqueeze", [mask, graph.constant([1], np.int64)], "pooling/Mask/Unsqueeze"
    )
    summed = graph.node("MatMul", [mask_row, token_states], "pooling/Sum")
    summed = graph.node("Squeeze", [summed, graph.constant([1], np.int64)], "pooling/Sum/Squeeze")
    counts = graph.node(
        "ReduceSum", [mask, graph.constant([1], np.int64)], "pooling/Count", keepdims=1
    )
    counts = graph.node("Max", [counts, graph.constant(MIN_TOKEN_COUNT)], "pooling/Count/Clamp")
    mean = graph.node("Div", [summed, counts], "pooling/Mean")
    # Opset 17's ReduceL2 takes its axes as an attribute (an input from opset 18).
    norms = graph.node("ReduceL2", [mean], "normalize/Norm", axes=[1], keepdims=1)
    norms = graph.node("Max", [norms, graph.constant(MIN_NORM)], "normalize/Norm/Clamp")
    return graph.node("Div", [mean, norms], "normalize/Div", output=SENTENCE_EMBEDDING)


def _encoder_model(graph: _GraphBuilder, hidden_size: int, doc: str) -> onnx.ModelProto:
    """Wrap the collected nodes with the encoder's interface (see the module docstring)."""

    def token_input(name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.INT64, [BATCH_AXIS, SEQUENCE_AXIS])

    output = helper.make_tensor_value_info(
        SENTENCE_EMBEDDING, TensorProto.FLOAT, [BATCH_AXIS, hidden_size]
    )
    onnx_graph = helper.make_graph(
        graph.nodes,
        "bert_encoder",
        [token_input(INPUT_IDS), token_input(ATTENTION_MASK)],
        [output],
        initializer=graph.initializers,
    )
    model = helper.make_model(
        onnx_graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name="inference-tools bert_onnx",
        producer_version=BUILDER_VERSION,
        doc_string=doc,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def build_bert_encoder_model(
    weights: Mapping[str, np.ndarray],
    bert_config: Mapping,
    unknown_token_id: int = BERT_UNKNOWN_TOKEN_ID,
) -> onnx.ModelProto:
    """The encoder as an in-memory ONNX model (see the module docstring for its interface)."""
    config = BertConfig.from_mapping(bert_config)
    graph = _GraphBuilder()
    hidden = _embeddings(graph, weights, config, unknown_token_id)
    mask = _additive_mask(graph)
    for index in range(config.num_hidden_layers):
        prefix = f"encoder.layer.{index}"
        attended = _attention(graph, hidden, mask, weights, f"{prefix}.attention", config)
        is_last = index == config.num_hidden_layers - 1
        hidden = _feed_forward(
            graph, attended, weights, prefix, config, LAST_HIDDEN_STATE if is_last else None
        )
    _mean_pool_normalize(graph, hidden)
    return _encoder_model(
        graph,
        config.hidden_size,
        f"BERT encoder ({config.num_hidden_layers} layers, hidden {config.hidden_size}), "
        "mean pooling, L2 normalisation",
    )


def build_lookup_encoder_model(
    hidden_size: int = 384, vocab_size: int = 30522, seed: int = 0
) -> onnx.ModelProto:
    """A near-zero-cost stand-in with the encoder's interface, for measuring the serving path.

    A random embedding table looked up by `input_ids`, then the same pooling head: the same
    inputs, outputs and shapes as the real encoder, with almost none of its arithmetic, so
    what a served request costs beyond the model shows on its own. Its embeddings mean nothing.
    """
    graph = _GraphBuilder()
    table = np.random.default_rng(seed).standard_normal((vocab_size, hidden_size))
    table_name = graph.initializer("lookup.table", table.astype(np.float32))
    token_ids = _ids_within_vocabulary(graph, vocab_size, BERT_UNKNOWN_TOKEN_ID)
    states = graph.node("Gather", [table_name, token_ids], "lookup/Gather", axis=0)
    _mean_pool_normalize(graph, states)
    return _encoder_model(
        graph, hidden_size, f"embedding lookup (hidden {hidden_size}) for serving benchmarks"
    )


def save_model_atomically(model: onnx.ModelProto, output_path: Path) -> None:
    """Serialize `model` to `output_path` in one rename (readers never see a partial file)."""
    with atomic_output_path(output_path) as temporary:
        onnx.save_model(model, str(temporary))


def build_bert_encoder(
    weights: Mapping[str, np.ndarray],
    bert_config: Mapping,
    output_path: Path,
    unknown_token_id: int = BERT_UNKNOWN_TOKEN_ID,
) -> None:
    """Build the encoder graph from `weights` (safetensors names) and write it to `output_path`."""
    model = build_bert_encoder_model(weights, bert_config, unknown_token_id)
    save_model_atomically(model, output_path)
