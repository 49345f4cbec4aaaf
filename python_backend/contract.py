"""The text_embedding ensemble's contract: its model names, tensor names and shapes.

The one definition the model code, the tooling, the benchmarks and the tests import; the model
configs in model_repository/ declare the same, and tests/python_backend/test_contract.py holds
them to it (every `config.pbtxt` and every `configs/*.pbtxt`). Standard library only.

  TEXT [n, 1] BYTES -> tokenizer -> INPUT_IDS, ATTENTION_MASK [n, bucket] INT64
    -> encoder -> LAST_HIDDEN_STATE [n, bucket, EMBEDDING_SIZE] FP32
    -> pooler (with ATTENTION_MASK) -> EMBEDDING [n, EMBEDDING_SIZE] FP32
"""

ENSEMBLE = "text_embedding"  # the entry model clients call
TOKENIZER = "tokenizer"
ENCODER = "minilm"
POOLER = "pooler"
COMPOSING_MODELS = (TOKENIZER, ENCODER, POOLER)  # in the order a request passes them

TEXT = "TEXT"  # the ensemble's and the tokenizer's input
INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
LAST_HIDDEN_STATE = "last_hidden_state"
EMBEDDING = "EMBEDDING"  # the ensemble's and the pooler's output

EMBEDDING_SIZE = 384  # the encoder's hidden size: all-MiniLM-L6-v2
