"""What the edge lets through to Triton: the public models, their paths, and the request limits.

One place for the decisions that every edge we ship must agree on: the Gateway routes, the
Ingress and its annotations, the NetworkPolicy, and the nginx that stands in for the edge in the
fault tests. The manifests spell these values in YAML; tests/kubernetes/test_edge_limits.py
checks each of them against this module, so changing a limit means changing it here and there.

Why each limit exists (docs/security.md has the threats and the tests that prove them):
- Triton 2.51 reads every HTTP body whole before any check, and a body of about 4 MB or more
  sent as `application/x-www-form-urlencoded` (curl's default) crashes it with SIGSEGV on any
  path. So bodies are capped, and content types other than JSON or binary tensors are refused.
- Composing models (the tokenizer, the encoder) take tensors no client should send;
  only the entry models' inference, metadata and readiness are routed.
- Administrative APIs (repository, config, statistics, trace, logging, shared memory) are not
  routed at all, even though Triton also locks them behind the admin header.
"""

from __future__ import annotations

# Entry models: what clients call. Composing models of an ensemble are reached through it only.
PUBLIC_MODELS: tuple[str, ...] = ("text_embedding",)

# The largest valid request holds 256 KiB of text (the tokenizer's max_request_text_bytes);
# as JSON with every byte escaped it stays under 2 MiB. The cap leaves room for that and for
# binary tensors, and stays far below what Triton would buffer.
MAX_REQUEST_BODY_BYTES = 8 * 1024 * 1024
MAX_REQUEST_BODY_NGINX = "8m"
# A client that sends its body slower than this is cut off rather than holding a connection.
CLIENT_BODY_TIMEOUT_SECONDS = 10
# Idle keep-alive connections are closed after this: they hold a descriptor each.
IDLE_TIMEOUT_SECONDS = 60
# Concurrent connections per client address at the edge (ingress-nginx `limit-connections`).
CONNECTIONS_PER_CLIENT = 64
# Inference requests run within the queue timeouts (2 s per queue) plus compute: 60 s is ample.
REQUEST_TIMEOUT_SECONDS = 60

# Content types Triton's HTTP API understands. A request with no Content-Type is allowed: the
# Python tritonclient sends none. Anything else (form-encoded above all) is refused with 415.
ALLOWED_CONTENT_TYPES: tuple[str, ...] = ("application/json", "application/octet-stream")

SERVER_PATHS: tuple[str, ...] = ("/v2", "/v2/health/live", "/v2/health/ready")

# gRPC methods of inference.GRPCInferenceService that clients need. ModelStreamInfer is left
# out: the entry models are not decoupled, and cancelled streams stall Triton 2.51's shutdown.
# ModelConfig and ModelStatistics are administrative.
GRPC_SERVICE = "inference.GRPCInferenceService"
PUBLIC_GRPC_METHODS: tuple[str, ...] = (
    "ServerLive",
    "ServerReady",
    "ServerMetadata",
    "ModelReady",
    "ModelMetadata",
    "ModelInfer",
)


def model_read_paths(model: str) -> tuple[str, ...]:
    """GET paths of one model: metadata and readiness."""
    return (f"/v2/models/{model}", f"/v2/models/{model}/ready")


def model_infer_path(model: str) -> str:
    return f"/v2/models/{model}/infer"


def public_http_paths(models: tuple[str, ...] = PUBLIC_MODELS) -> set[str]:
    """Every HTTP path the edge routes, all matched exactly."""
    paths = set(SERVER_PATHS)
    for model in models:
        paths.update(model_read_paths(model))
        paths.add(model_infer_path(model))
    return paths


def public_grpc_paths() -> set[str]:
    return {f"/{GRPC_SERVICE}/{method}" for method in PUBLIC_GRPC_METHODS}


def content_type_allowed(content_type: str | None) -> bool:
    """Whether the edge forwards a request with this Content-Type header value."""
    if not content_type:
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in ALLOWED_CONTENT_TYPES


def nginx_content_type_map(variable: str) -> str:
    """An nginx `map` that sets `variable` to 1 for a Content-Type the edge refuses."""
    allowed = "\n".join(
        f'    "~*^{media_type}\\s*(;|$)" 0;' for media_type in ALLOWED_CONTENT_TYPES
    )
    return f"""\
  map $http_content_type ${variable} {{
    default 1;
    "" 0;
{allowed}
  }}"""


def nginx_http_locations(upstream: str, refuse_variable: str) -> str:
    """nginx locations for the public HTTP paths only; everything else gets 404 from nginx."""
    locations = []
    for path in sorted(public_http_paths()):
        locations.append(f"""\
    location = {path} {{
      if (${refuse_variable}) {{ return 415; }}
      proxy_pass http://{upstream};
    }}""")
    locations.append("    location / { return 404; }")
    return "\n".join(locations)


def nginx_grpc_locations(upstream: str) -> str:
    """nginx locations for the public gRPC methods only; other methods get UNIMPLEMENTED."""
    locations = [
        f"""\
    location = {path} {{
      grpc_pass grpc://{upstream};
      grpc_read_timeout {REQUEST_TIMEOUT_SECONDS}s;
    }}"""
        for path in sorted(public_grpc_paths())
    ]
    # gRPC status 12 (UNIMPLEMENTED), as a server answers a method it does not have.
    locations.append("""\
    location / {
      default_type application/grpc;
      add_header grpc-status 12 always;
      add_header grpc-message "method not routed" always;
      return 200;
    }""")
    return "\n".join(locations)


def nginx_server_limits() -> str:
    """Connection and body limits for an nginx `server` block (the edge's own settings)."""
    return f"""\
    client_max_body_size {MAX_REQUEST_BODY_NGINX};
    client_body_timeout {CLIENT_BODY_TIMEOUT_SECONDS}s;
    client_header_timeout {CLIENT_BODY_TIMEOUT_SECONDS}s;
    limit_conn edge_per_client {CONNECTIONS_PER_CLIENT};"""


def nginx_http_limits() -> str:
    """Directives for nginx's `http` block that the server limits refer to."""
    return (
        "  limit_conn_zone $binary_remote_addr zone=edge_per_client:1m;\n  limit_conn_status 429;"
    )
