"""The request limits are configured in the model repository and enforced at their boundary.

- longest text: the tokenizer's `max_text_bytes` parameter (UTF-8 bytes per text);
- most text in one request: the tokenizer's `max_request_text_bytes` (all texts together);
- most tokens in one request: the tokenizer's `max_request_tokens` (texts x padded length);
- most texts in one request: `max_batch_size` (the ensemble's and every composing model's).
"""

from __future__ import annotations

import pytest
from inference_tools.model_config import read_model_config
from tritonclient.utils import InferenceServerException

from python_backend.contract import COMPOSING_MODELS, ENSEMBLE
from tests.clients import PROTOCOLS, embed

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def limits(model_repository) -> dict[str, int]:
    tokenizer = read_model_config(model_repository / "tokenizer" / "config.pbtxt")
    # The ensemble and its steps; other models of the repository have limits of their own.
    batch_sizes = {
        read_model_config(model_repository / model / "config.pbtxt").max_batch_size
        for model in (ENSEMBLE, *COMPOSING_MODELS)
    }
    assert len(batch_sizes) == 1, f"the pipeline's models disagree on max_batch_size: {batch_sizes}"
    return {
        "max_text_bytes": int(tokenizer.parameters["max_text_bytes"].string_value),
        "max_request_text_bytes": int(tokenizer.parameters["max_request_text_bytes"].string_value),
        "max_request_tokens": int(tokenizer.parameters["max_request_tokens"].string_value),
        "max_tokens": int(tokenizer.parameters["max_tokens"].string_value),
        "max_batch_size": batch_sizes.pop(),
    }


def text_of(size: int) -> bytes:
    # Multi-byte characters: the limit counts UTF-8 bytes, not characters.
    unit = "é word ".encode()
    return (unit * (size // len(unit) + 1))[:size].rstrip(b"\xc3").ljust(size, b"x")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_longest_text_is_accepted_one_byte_more_is_refused(connect, limits, protocol):
    limit = limits["max_text_bytes"]
    client = connect(protocol)
    (vector,) = embed(client, protocol, [text_of(limit)])
    assert vector.shape == (384,)
    with pytest.raises(InferenceServerException) as refused:
        embed(client, protocol, [text_of(limit + 1)])
    assert f"{limit + 1} bytes; the limit is {limit} bytes" in refused.value.message()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_one_text_over_max_batch_size_is_refused(connect, limits, protocol):
    batch = limits["max_batch_size"]
    with pytest.raises(InferenceServerException) as refused:
        embed(connect(protocol), protocol, ["short"] * (batch + 1))
    assert f"batch-size must be <= {batch}" in refused.value.message()


def accepted_then_one_more_refused(client, protocol, texts, more, message) -> None:
    """`texts` are embedded; with `more` added, refused with 400 naming the limit (`message`);
    and the server serves on."""
    assert embed(client, protocol, texts).shape == (len(texts), 384)
    with pytest.raises(InferenceServerException) as refused:
        embed(client, protocol, texts + more)
    assert message in refused.value.message()
    (vector,) = embed(client, protocol, ["still served"])
    assert vector.shape == (384,)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_longest_texts_the_token_budget_holds_are_accepted_one_more_is_refused(
    connect, limits, protocol
):
    budget = limits["max_request_tokens"]
    full_length = budget // limits["max_tokens"]
    client = connect(protocol)
    long = text_of(4096)  # far over the tokens read of a text: truncated to max_tokens
    # One short text more: padded to the longest, it costs a full row.
    accepted_then_one_more_refused(
        client,
        protocol,
        [long] * full_length,
        [b"short"],
        f"the limit for one request is {budget} tokens",
    )


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_texts_over_the_request_bytes_are_refused_naming_the_limit(connect, limits, protocol):
    text_limit, request_limit = limits["max_text_bytes"], limits["max_request_text_bytes"]
    client = connect(protocol)
    texts = request_limit // text_limit
    # Longest texts of a word and spaces: every byte is read, few tokens come out, so the
    # request is at its byte limit and well within its token budget.
    sparse = b"word" + b" " * (text_limit - 4)
    # One byte more in one more text.
    accepted_then_one_more_refused(
        client, protocol, [sparse] * texts, [b"x"], f"more than {request_limit} bytes of text"
    )
