"""tritonclient calls the server tests share: the text_embedding model over HTTP and gRPC."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import np_to_triton_dtype

from python_backend.contract import EMBEDDING, ENSEMBLE, TEXT

MODEL = ENSEMBLE
PROTOCOLS = ("http", "grpc")


def text_tensor(texts: Sequence[str | bytes]) -> np.ndarray:
    rows = [t if isinstance(t, bytes) else t.encode("utf-8") for t in texts]
    return np.array(rows, dtype=object).reshape(-1, 1)


def client_for(server, protocol: str):
    """A new client; close it when done (Triton waits for open HTTP connections at shutdown)."""
    if protocol == "http":
        return httpclient.InferenceServerClient(server.http_url, network_timeout=120.0)
    return grpcclient.InferenceServerClient(server.grpc_url)


def infer(
    client,
    protocol: str,
    inputs: dict[str, np.ndarray],
    model: str = MODEL,
    output: str = EMBEDDING,
):
    module = httpclient if protocol == "http" else grpcclient
    tensors = []
    for name, value in inputs.items():
        datatype = np_to_triton_dtype(value.dtype)
        tensor = module.InferInput(name, list(value.shape), datatype)
        tensor.set_data_from_numpy(value)
        tensors.append(tensor)
    result = client.infer(model, tensors, outputs=[module.InferRequestedOutput(output)])
    return result.as_numpy(output)


def embed(client, protocol: str, texts: Sequence[str | bytes]) -> np.ndarray:
    return infer(client, protocol, {TEXT: text_tensor(texts)})
