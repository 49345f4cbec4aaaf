"""`inference-tools serve`: the model repository on a real local Triton, until Ctrl-C."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from pod_hooks.model_roles import ADMIN_KEY_ENV

from inference_tools.commands.options import add_model_repository
from inference_tools.exposure import exposure_warning
from inference_tools.local_server import LocalTritonServer
from inference_tools.repository_builds import build_if_default_repository

# Triton's log line while it waits for HTTP connections at shutdown (http_server.cc).
HTTP_CONNECTIONS_WAIT = "HTTP service connections"
SUMMARY = "serve the model repository with a real Triton on this machine"
DESCRIPTION = """\
Serve a Triton model repository with the real tritonserver 2.51.0 that nvidia-pytriton bundles,
on the CPU, with no cluster, GPU or container. ONNX models keep `backend: "onnxruntime"`: a
Python-based backend of that name runs them with the onnxruntime package. Ctrl-C (or SIGTERM)
stops the server cleanly.
"""
EXAMPLES = """\
Examples:
  inference-tools serve                      # model_repository/ on 8000/8001/8002
  inference-tools serve --http-port 9000 --log-verbose 1
  inference-tools serve --no-build -- --log-info=false   # extra tritonserver flags after --
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_repository(parser, help="model repository folder to serve")
    parser.add_argument("--http-port", type=int, default=8000, help="HTTP/REST port")
    parser.add_argument("--grpc-port", type=int, default=8001, help="gRPC port")
    parser.add_argument("--metrics-port", type=int, default=8002, help="Prometheus metrics port")
    parser.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 exposes the server to the network, and warns which "
        "administrative APIs are then open",
    )
    parser.add_argument(
        "--log-verbose", type=int, default=0, help="Triton's --log-verbose level, 0 for off"
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="how long to wait for every model to be ready",
    )
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="do not build the generated model files first (built only for the default "
        "repository, and only what changed)",
    )
    parser.add_argument(
        "triton_args",
        nargs="*",
        metavar="-- TRITON_ARG",
        help="extra tritonserver flags, after `--` (the default --model-control-mode=explicit "
        "--load-model=* lets the stop drain exactly; choosing another mode keeps it from that; "
        f"with a restricted repository API the stop reads the key from ${ADMIN_KEY_ENV})",
    )


def stop_on_signals(stop_requested: threading.Event, serving: threading.Event) -> None:
    """Ctrl-C (SIGINT) and SIGTERM set `stop_requested`, whatever this process inherited.

    A shell without job control (a CI script's `make test &`, `nohup ... &`) starts background
    commands with SIGINT ignored, as POSIX asks, and exec keeps an ignored signal ignored and a
    blocked one blocked. Python installs its KeyboardInterrupt handler only where SIGINT was not
    ignored: started under such a shell, `serve` never noticed Ctrl-C. Until `serving` is set,
    the first signal also raises KeyboardInterrupt, which ends the build or the wait for the
    models (LocalTritonServer.start stops what it had started).
    """

    def request_stop(signum: int, frame: object) -> None:
        first = not stop_requested.is_set()
        stop_requested.set()
        if first and not serving.is_set():
            raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def run(args: argparse.Namespace) -> int:
    stop_requested, serving = threading.Event(), threading.Event()
    stop_on_signals(stop_requested, serving)
    warning = exposure_warning(args.address, args.triton_args)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    if not args.no_build:
        build_if_default_repository(args.model_repository)
    server = LocalTritonServer(
        args.model_repository.resolve(),
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        log_verbose=args.log_verbose,
        address=args.address,
        extra_args=args.triton_args,
        admin_key=os.environ.get(ADMIN_KEY_ENV) or None,
    )
    try:
        server.start(timeout_s=args.startup_timeout)
        serving.set()
    except KeyboardInterrupt:
        # A stop signal while the models load (or just after): stop the same way as later.
        serving.set()
    if not stop_requested.is_set():
        print(
            f"Triton is serving {args.model_repository}\n"
            f"  HTTP    http://{server.http_url}   (try: curl {server.http_url}/v2/health/ready)\n"
            f"  gRPC    {server.grpc_url}\n"
            f"  metrics {server.metrics_url}\n"
            f"  log     {server.log_path}\n"
            "Press Ctrl-C to stop.",
            flush=True,
        )
    while not stop_requested.wait(timeout=1.0):
        if server.process is not None and server.process.poll() is not None:
            print(
                f"tritonserver exited with status {server.process.returncode}; "
                f"see {server.log_path}"
            )
            return 1
    print("stopping Triton (finishing requests in flight first)...", flush=True)
    status = server.stop(drain=True)
    print(f"Triton stopped (exit status {status}).")
    if status != 0 and HTTP_CONNECTIONS_WAIT in server.log_path.read_text(errors="replace"):
        # Triton 2.51 waits for open HTTP connections, idle keep-alive ones too, until its exit
        # timeout, and then exits 1. Nothing was in flight: the drain came first.
        print(
            "Triton waited for idle HTTP keep-alive connections until its exit timeout; "
            "clients that close their connections let it stop at once."
        )
    return 0
