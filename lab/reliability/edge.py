"""What the edge lets through to Triton: the public models, their paths, and the request limits.

One place for the decisions that every edge we ship must agree on: the Gateway routes, the
Ingress and its annotations, the NetworkPolicy, and the nginx that stands in for the edge in the
fault tests. The routes are decided here and tests/kubernetes/test_edge_limits.py holds every
manifest to them. The limits are the manifests' own: `edge_limits()` reads them from the
rendered Ingress (ingress-nginx's annotations) and NGINX Gateway Fabric's policy, and the same
test holds the other edges (Envoy Gateway) to them.

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

import functools
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from inference_tools.manifests.render import render, render_component_on_base
from inference_tools.paths import KUSTOMIZE_DIR

# Entry models: what clients call. Composing models of an ensemble are reached through it only.
PUBLIC_MODELS: tuple[str, ...] = ("text_embedding",)

# Where the limits are written: the overlay whose edge is ingress-nginx (what the stand-in is),
# and the component with NGINX Gateway Fabric's client settings (the timeouts the Ingress has no
# annotation for).
INGRESS_OVERLAY = "gpu-ingress"
NGINX_GATEWAY_LIMITS = "gateway-limits-nginx"
INGRESS_ANNOTATION = "nginx.ingress.kubernetes.io/"
_NGINX_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_SECONDS = re.compile(r"^(\d+)s?$")


@dataclass(frozen=True)
class EdgeLimits:
    """What the edge allows one client; the manifests say why each limit exists."""

    max_body_nginx: str  # nginx's size syntax, as the Ingress and NGINX Gateway Fabric write it
    connections_per_client: int
    request_timeout_seconds: int  # the longest an inference request may take upstream
    client_body_timeout_seconds: int  # a client sending its body slower is cut off
    idle_timeout_seconds: int  # idle keep-alive connections close: they hold a descriptor each

    @property
    def max_body_bytes(self) -> int:
        number, unit = _match(_NGINX_SIZE, self.max_body_nginx).groups()
        return int(number) * 1024 ** " kmg".index(unit.lower() or " ")


def _match(pattern: re.Pattern[str], text: str) -> re.Match[str]:
    found = pattern.match(text)
    if found is None:
        raise ValueError(f"{text!r} is not a value the edge's limits are read as")
    return found


def _seconds(text: str) -> int:
    return int(_match(_SECONDS, str(text)).group(1))


@functools.cache
def edge_limits(kustomize_dir: Path = KUSTOMIZE_DIR) -> EdgeLimits:
    """The limits as the rendered manifests set them (`kubectl kustomize`, once per process)."""
    ingress = render(kustomize_dir / "overlays" / INGRESS_OVERLAY).one("Ingress", "triton-http")
    annotations = ingress["metadata"]["annotations"]
    with tempfile.TemporaryDirectory() as work_dir:
        gateway = render_component_on_base(
            kustomize_dir / "components" / NGINX_GATEWAY_LIMITS,
            Path(work_dir),
            kustomize_dir / "base",
        )
    client_settings = gateway.one("ClientSettingsPolicy", "triton-http")["spec"]
    return EdgeLimits(
        max_body_nginx=annotations[INGRESS_ANNOTATION + "proxy-body-size"],
        connections_per_client=int(annotations[INGRESS_ANNOTATION + "limit-connections"]),
        request_timeout_seconds=_seconds(annotations[INGRESS_ANNOTATION + "proxy-read-timeout"]),
        client_body_timeout_seconds=_seconds(client_settings["body"]["timeout"]),
        idle_timeout_seconds=_seconds(client_settings["keepAlive"]["timeout"]["server"]),
    )


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


def nginx_grpc_locations(upstream: str, limits: EdgeLimits) -> str:
    """nginx locations for the public gRPC methods only; other methods get UNIMPLEMENTED."""
    locations = [
        f"""\
    location = {path} {{
      grpc_pass grpc://{upstream};
      grpc_read_timeout {limits.request_timeout_seconds}s;
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


def nginx_server_limits(limits: EdgeLimits) -> str:
    """Connection and body limits for an nginx `server` block (the edge's own settings)."""
    return f"""\
    client_max_body_size {limits.max_body_nginx};
    client_body_timeout {limits.client_body_timeout_seconds}s;
    client_header_timeout {limits.client_body_timeout_seconds}s;
    limit_conn edge_per_client {limits.connections_per_client};"""


def nginx_http_limits() -> str:
    """Directives for nginx's `http` block that the server limits refer to."""
    return (
        "  limit_conn_zone $binary_remote_addr zone=edge_per_client:1m;\n  limit_conn_status 429;"
    )
