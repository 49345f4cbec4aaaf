"""The text_embedding ensemble's contract: its model names, tensor names and shapes.

The one definition the model code, the tooling, the benchmarks and the tests import; the model
configs in model_repository/ declare the same, and tests/python_backend/test_contract.py holds
them to it (every `config.pbtxt` and every `configs/*.pbtxt`). Standard library only.

  TEXT [n, 1] BYTES -> tokenizer -> INPUT_IDS, ATTENTION_MASK [n, bucket] INT64
    -> encoder (masked mean pooling and L2 normalisation inside its graph)
    -> SENTENCE_EMBEDDING [n, EMBEDDING_SIZE] FP32, the ensemble's EMBEDDING
"""

ENSEMBLE = "text_embedding"  # the entry model clients call
TOKENIZER = "tokenizer"
ENCODER = "minilm"
COMPOSING_MODELS = (TOKENIZER, ENCODER)  # in the order a request passes them

TEXT = "TEXT"  # the ensemble's and the tokenizer's input
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
SENTENCE_EMBEDDING = "sentence_embedding"  # the encoder's output
EMBEDDING = "EMBEDDING"  # the ensemble's output

EMBEDDING_SIZE = 384  # the encoder's hidden size: all-MiniLM-L6-v2
