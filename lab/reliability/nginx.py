"""A real nginx in front of local Triton replicas, for HTTP and gRPC, on loopback ports.

It plays the part of the Service/Ingress data path in the fault scenarios: `set_endpoints()`
rewrites both upstream groups and reloads nginx, which is what an ingress controller does when
the EndpointSlice of the Service changes (a pod turned ready, or started terminating). On reload
nginx starts new workers with the new upstreams and lets the old ones finish the requests they
hold, so in-flight requests are not cut by the proxy itself.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from inference_tools.local_server import LOOPBACK, free_ports, port_in_use
from inference_tools.subprocesses import ManagedService, stop_process, wait_until_ready
from inference_tools.system_packages import SystemPackageMissing

from lab.reliability import edge

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
START_TIMEOUT_S = 10.0
REFUSED_CONTENT_TYPE = "edge_refused_content_type"


class NginxMissing(SystemPackageMissing):
    pass


@dataclass(frozen=True)
class Endpoint:
    """One replica as the proxy sees it."""

    http: str  # "127.0.0.1:PORT"
    grpc: str


def nginx_binary() -> str:
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise NginxMissing("nginx (Debian's nginx)")


def render_config(
    prefix: Path, http_port: int, grpc_port: int, endpoints: Sequence[Endpoint]
) -> str:
    def servers(addresses: list[str]) -> str:
        # An empty upstream is invalid; a closed port makes requests fail loudly (502) instead.
        return "\n".join(f"    server {a};" for a in addresses) or f"    server {LOOPBACK}:9 down;"

    temp = prefix / "temp"
    limits = edge.edge_limits()
    return f"""\
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {temp}/body;
  proxy_temp_path {temp}/proxy;
  fastcgi_temp_path {temp}/fastcgi;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
{edge.nginx_http_limits()}
{edge.nginx_content_type_map(REFUSED_CONTENT_TYPE)}
  # No keep-alive to Triton's HTTP port: on SIGTERM, Triton 2.51 first waits (up to
  # --exit-timeout-secs) for its open HTTP connections to close, still serving requests on
  # them, and pooled proxy connections would hold it there. HTTP/2 (gRPC) is always pooled.
  upstream triton_http {{
{servers([e.http for e in endpoints])}
  }}
  upstream triton_grpc {{
{servers([e.grpc for e in endpoints])}
    keepalive 32;
  }}
  server {{
    listen {LOOPBACK}:{http_port};
    # One request per client connection: a reload closes the old workers' idle keep-alive
    # connections, and a client sending on one at that instant sees a reset. Ingress
    # controllers change endpoints without reloading, so that race belongs to this stand-in.
    keepalive_timeout 0;
    proxy_read_timeout 120s;
    # Hold a whole response (64 embeddings of JSON fit) in memory: a response spilled to a
    # temporary file was seen cut short at the buffers' size (16 KB) across a reload.
    proxy_buffer_size 64k;
    proxy_buffers 16 64k;
    proxy_busy_buffers_size 128k;
    proxy_max_temp_file_size 0;
    # Request bodies up to the cap stay in memory too: the workers run as nobody and cannot
    # write the temporary folder root created, so a body spilled to it (500 KB of JSON) got 500.
    client_body_buffer_size {limits.max_body_nginx};
    # The edge's limits and routes, as the Ingress and Gateway ship them (lab.reliability.edge).
{edge.nginx_server_limits(limits)}
{edge.nginx_http_locations("triton_http", REFUSED_CONTENT_TYPE)}
  }}
  server {{
    listen {LOOPBACK}:{grpc_port} http2;
{edge.nginx_server_limits(limits)}
{edge.nginx_grpc_locations("triton_grpc", limits)}
  }}
}}
"""


class NginxProxy(ManagedService):
    """nginx as a foreground process with its own prefix folder; `http_url`/`grpc_url` in front."""

    def __init__(self, endpoints: Sequence[Endpoint] = (), prefix: Path | None = None) -> None:
        self.prefix = prefix or Path(tempfile.mkdtemp(prefix="nginx-"))
        self.http_port, self.grpc_port = free_ports(2)
        self.endpoints: tuple[Endpoint, ...] = tuple(endpoints)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def http_url(self) -> str:
        return f"{LOOPBACK}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{LOOPBACK}:{self.grpc_port}"

    @property
    def config_path(self) -> Path:
        return self.prefix / "nginx.conf"

    def _write_config(self) -> None:
        for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            folder = self.prefix / "temp" / name
            folder.mkdir(parents=True, exist_ok=True)
            # Workers may run as another user than the master (nginx drops root).
            folder.chmod(0o777)
        self.config_path.write_text(
            render_config(self.prefix, self.http_port, self.grpc_port, self.endpoints)
        )

    def _nginx(self, *args: str) -> list[str]:
        return [nginx_binary(), "-p", str(self.prefix), "-c", str(self.config_path), *args]

    def start(self) -> NginxProxy:
        self._write_config()
        subprocess.run(self._nginx("-t", "-q"), check=True, capture_output=True)
        log = (self.prefix / "stdout.log").open("wb")
        self.process = subprocess.Popen(self._nginx(), stdout=log, stderr=subprocess.STDOUT)
        problem = wait_until_ready(
            lambda: port_in_use(LOOPBACK, self.http_port) and port_in_use(LOOPBACK, self.grpc_port),
            self.process,
            START_TIMEOUT_S,
            interval_s=0.05,
        )
        if problem:
            raise RuntimeError(f"nginx did not start ({problem}): {self.error_log()}")
        return self

    def set_endpoints(self, endpoints: Sequence[Endpoint]) -> None:
        """Route new requests to `endpoints` only (an EndpointSlice update, as nginx sees it)."""
        self.endpoints = tuple(endpoints)
        self._write_config()
        subprocess.run(self._nginx("-t", "-q"), check=True, capture_output=True)
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)
        # nginx reloads asynchronously; the new workers start in well under a second.
        time.sleep(0.5)

    def error_log(self) -> str:
        path = self.prefix / "error.log"
        return path.read_text(errors="replace")[-3000:] if path.is_file() else ""

    def stop(self) -> None:
        # SIGQUIT is nginx's graceful stop: finish the requests in progress, then exit.
        stop_process(self.process, timeout_s=15, stop_signal=signal.SIGQUIT)
