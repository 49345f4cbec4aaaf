"""A gRPC retry policy for Triton clients: UNAVAILABLE is retried, a few times, with backoff.

Triton answers UNAVAILABLE when a request never started: a full queue (`Exceeds maximum queue
size`), a server that is stopping, an admin call without the key. Inference here is free of side
effects, so resending such a request is safe. gRPC's own retries (A6, on by default in grpcio)
do it below tritonclient, for every call on the channel:

- at most `MAX_ATTEMPTS` attempts, with exponential backoff between them (randomised by gRPC);
- only UNAVAILABLE: a deadline, an invalid argument or an internal error is never retried;
- retry throttling: when more than half of the channel's recent calls failed, retries stop until
  calls succeed again, so an overloaded server is not sent twice the load.

Use: `grpcclient.InferenceServerClient(url, channel_args=retrying_channel_args())`.
tritonclient 2.51 replaces all of its channel options by `channel_args`, so this keeps its
message-size limits and keepalive defaults.
"""

from __future__ import annotations

import json
from typing import Any

from tritonclient.grpc import KeepAliveOptions
from tritonclient.grpc._client import MAX_GRPC_MESSAGE_SIZE

MAX_ATTEMPTS = 4
INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 1.0
BACKOFF_MULTIPLIER = 2
# Each failure takes a token and each success gives back `TOKEN_RATIO`; retries pause while
# fewer than half of `MAX_TOKENS` are left.
MAX_TOKENS = 10
TOKEN_RATIO = 0.5

SERVICE_CONFIG: dict[str, Any] = {
    "methodConfig": [
        {
            "name": [{"service": "inference.GRPCInferenceService", "method": "ModelInfer"}],
            "retryPolicy": {
                "maxAttempts": MAX_ATTEMPTS,
                "initialBackoff": f"{INITIAL_BACKOFF_S}s",
                "maxBackoff": f"{MAX_BACKOFF_S}s",
                "backoffMultiplier": BACKOFF_MULTIPLIER,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
    "retryThrottling": {"maxTokens": MAX_TOKENS, "tokenRatio": TOKEN_RATIO},
}


def retrying_channel_args() -> list[tuple[str, Any]]:
    """tritonclient's default channel options plus the retry policy."""
    keepalive = KeepAliveOptions()
    return [
        ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
        ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
        ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
        ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    ]
