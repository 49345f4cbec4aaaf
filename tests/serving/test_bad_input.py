"""Bad requests get a clear client error and the server keeps serving.

Each case is sent over HTTP and gRPC; after it, a correct request must still succeed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from tests.clients import MODEL, PROTOCOLS, embed, infer, text_tensor

pytestmark = pytest.mark.server

BAD_REQUESTS = {
    # name: (inputs, a fragment the error message must contain)
    "wrong input name": (
        {"WORDS": text_tensor(["hi"])},
        "unexpected inference input 'WORDS'",
    ),
    "wrong dtype": ({"TEXT": np.ones((1, 1), np.int32)}, "data-type is 'INT32'"),
    "wrong shape": ({"TEXT": text_tensor(["a", "b"]).reshape(1, 2)}, "unexpected shape"),
    "empty batch": ({"TEXT": text_tensor([]).reshape(0, 1)}, "'TEXT'"),
    "non-UTF-8 text": ({"TEXT": text_tensor([b"ok", b"\xc3\x28 broken"])}, "not valid UTF-8"),
    "batch over max_batch_size": (
        {"TEXT": text_tensor(["x"] * 65)},
        "batch-size must be <= 64",
    ),
    "text of several megabytes": (
        {"TEXT": text_tensor([b"word " * 800_000])},
        "the limit is 65536 bytes",
    ),
}


def assert_still_serving(client, protocol):
    (vector,) = embed(client, protocol, ["still serving?"])
    assert vector.shape == (384,)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_a_client_error_with_a_reason(connect, protocol, case):
    inputs, fragment = BAD_REQUESTS[case]
    client = connect(protocol)
    with pytest.raises(InferenceServerException) as raised:
        infer(client, protocol, inputs)
    error = raised.value
    if protocol == "http":
        assert error.status() == "400", (case, error.status(), error.message())
    else:
        assert error.status() == "StatusCode.INVALID_ARGUMENT", (case, error.status())
    assert fragment.lower() in error.message().lower(), error.message()
    assert_still_serving(client, protocol)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_request_without_any_input_is_refused(connect, protocol):
    client = connect(protocol)
    module = httpclient if protocol == "http" else grpcclient
    with pytest.raises(InferenceServerException, match="expected 1 inputs but got 0"):
        client.infer(MODEL, [], outputs=[module.InferRequestedOutput("EMBEDDING")])
    assert_still_serving(client, protocol)


def test_a_bad_request_does_not_fail_the_requests_batched_with_it(connect):
    """Good and bad requests sent at once share tokenizer batches; only the bad ones fail."""

    client = connect("grpc")

    def send(index: int) -> str:
        text = b"\xff\xfe" if index % 4 == 0 else f"sentence number {index}".encode()
        try:
            embed(client, "grpc", [text])
        except InferenceServerException as error:
            return error.status()
        return "ok"

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(send, range(64)))
    for index, outcome in enumerate(outcomes):
        expected = "StatusCode.INVALID_ARGUMENT" if index % 4 == 0 else "ok"
        assert outcome == expected, (index, outcome)
