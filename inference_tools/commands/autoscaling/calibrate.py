"""`inference-tools autoscaling calibrate`: measure where p95 latency crosses the objective, write
targets."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from inference_tools.autoscaling import calibrate, rendered_settings
from inference_tools.autoscaling.servicemonitor import LocalTarget, scrape_configs
from inference_tools.commands.autoscaling.options import add_scrape_interval
from inference_tools.commands.options import add_measured_model, add_model_repository
from inference_tools.local_server import LocalTritonServer
from inference_tools.manifests.render import Render
from inference_tools.paths import KUSTOMIZE_DIR, RESULTS_DIR
from inference_tools.perf.perf_analyzer import LoadLevel, PerfAnalyzerSettings
from inference_tools.prometheus_runner import LocalPrometheus
from inference_tools.repository_builds import build_if_default_repository

if TYPE_CHECKING:
    from prometheus_api_client import PrometheusConnect

DEFAULT_COMPONENT = KUSTOMIZE_DIR / "components" / "autoscaling-calibrated"
DEFAULT_OUT_DIR = RESULTS_DIR / "calibration"
CALIBRATION_POD = "triton-calibration-0"


@contextlib.contextmanager
def server_under_load(args: argparse.Namespace) -> Iterator[tuple[str, str, str]]:
    """(gRPC URL, metrics URL, description) of the server to load: given, or a local one."""
    if args.grpc_url:
        if not args.metrics_url and not args.prometheus_url:
            raise SystemExit("--grpc-url needs --metrics-url (or --prometheus-url and --pod)")
        yield args.grpc_url, args.metrics_url or "", f"server at {args.grpc_url}"
        return
    repository = args.model_repository.resolve()
    build_if_default_repository(repository)
    with LocalTritonServer(repository) as server:
        # Other work on the machine shifts every number: say how busy it was.
        load = os.getloadavg()[0]
        description = (
            f"the local CPU Triton 2.51, {repository.name}/ ({os.cpu_count()} cores, "
            f"load average {load:.1f} at the start)"
        )
        yield server.grpc_url, server.metrics_url, description


@contextlib.contextmanager
def prometheus_for(
    args: argparse.Namespace, metrics_url: str, rendered: Render
) -> Iterator[tuple[PrometheusConnect, str, str | None]]:
    """(client, pod, namespace): the cluster's Prometheus for --pod, or a local one."""
    # Imported here, as the model configs below: `--help` stays quick without them.
    from prometheus_api_client import PrometheusConnect

    if args.prometheus_url:
        if not args.pod:
            raise SystemExit("--prometheus-url needs --pod (the pod under load)")
        yield PrometheusConnect(url=args.prometheus_url, disable_ssl=True), args.pod, args.namespace
        return
    address = metrics_url.split("/")[2]
    config = {
        "global": {"scrape_interval": f"{args.scrape_interval}s"},
        "scrape_configs": scrape_configs(
            rendered, [LocalTarget(address, CALIBRATION_POD)], f"{args.scrape_interval}s"
        ),
    }
    with LocalPrometheus(config, work_dir=args.out_dir / "prometheus") as local:
        yield PrometheusConnect(url=local.url, disable_ssl=True), CALIBRATION_POD, None


def run(args: argparse.Namespace) -> int:
    from inference_tools.perf.measured_model import choose_measured_model

    rendered = rendered_settings.render(args.kustomization)
    expressions = calibrate.signal_expressions(rendered)
    levels = [LoadLevel("concurrency", float(v)) for v in args.levels.split(",")]
    out_dir: Path = args.out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    loaded = choose_measured_model(args.model_repository, args.model, out_dir / "input-data.json")
    with server_under_load(args) as (grpc_url, metrics_url, source):
        settings = PerfAnalyzerSettings(
            model=loaded.model,
            url=grpc_url,
            protocol="grpc",
            input_data=loaded.input_data,
            measurement_interval_ms=args.measurement_interval_ms,
            stability_percentage=args.stability_percentage,
        )
        with prometheus_for(args, metrics_url, rendered) as (prometheus, pod, namespace):
            results = calibrate.sweep(
                settings,
                levels,
                prometheus,
                expressions,
                pod,
                out_dir,
                namespace=namespace,
                on_level=lambda r: print(
                    f"{r.level.label:16} {r.throughput_per_s:7.1f}/s  "
                    f"p95 {r.p95_latency_ms:7.1f} ms  "
                    f"queue {r.queue_time_per_request_us:9.0f} us  "
                    f"pending {r.pending_requests:6.2f}",
                    flush=True,
                ),
            )
    result = calibrate.crossing(results, args.objective_ms, args.headroom)
    files = calibrate.component_files(result, results, source)
    directory = calibrate.write_component(files, args.component)
    print(files["kustomization.yaml"])
    print(
        f"written: {directory}/kustomization.yaml (list it under `components:` after the "
        "autoscaling component)"
    )
    return 0


SUMMARY = "sweep load, find where p95 crosses the objective, write the HPA/KEDA targets"
DESCRIPTION = f"""\
Sweep the load on one Triton (the local one, or --grpc-url) with perf_analyzer, compute the
queue time per request, pending requests and request rate at each level with the rendered
recording rules' expressions, interpolate them to where p95 latency crosses --objective-ms, and
write the targets as a kustomize component with the measurements in a comment: the queue
signals' values there times --headroom, the request rate's times {calibrate.REQUEST_RATE_HEADROOM:g}
(the HPA adds a pod 10% above its target).

Against a cluster: --grpc-url names one pod, and either --metrics-url (a local Prometheus
scrapes it) or --prometheus-url with --pod (the cluster's Prometheus already does).
"""
EXAMPLES = """\
Examples:
  inference-tools autoscaling calibrate --objective-ms 500        # the local CPU Triton
  inference-tools autoscaling calibrate --objective-ms 150 --levels 1,2,4,8,16,32,64,128 \\
      --grpc-url 10.0.0.12:8001 \\
      --prometheus-url http://prometheus-operated.monitoring.svc:9090 \\
      --pod triton-7d9f-abcde --namespace inference \\
      --kustomization kustomize/overlays/gpu-keda --component /tmp/autoscaling-calibrated-gpu
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--objective-ms",
        type=float,
        required=True,
        help="p95 latency objective, in ms: the targets are the signals where p95 crosses it",
    )
    parser.add_argument(
        "--levels",
        default="1,2,4,8,16,24,32",
        help="perf_analyzer concurrencies to sweep, comma-separated; p95 must cross the "
        "objective between two of them",
    )
    parser.add_argument(
        "--headroom",
        type=float,
        default=calibrate.QUEUE_HEADROOM,
        help="the queue signals' targets are their values at the crossing times this",
    )
    parser.add_argument(
        "--kustomization",
        type=Path,
        default=KUSTOMIZE_DIR / "overlays" / "cpu-hpa",
        help="overlay whose recording rules give the signals' expressions and whose "
        "ServiceMonitor the local Prometheus copies",
    )
    add_measured_model(parser, "; see --model-repository")
    add_model_repository(
        parser,
        help="the repository served locally (without --grpc-url), whose configs name the model "
        "and its inputs",
    )
    parser.add_argument(
        "--grpc-url",
        help="host:port of a remote Triton to load (one pod) instead of a local server; needs "
        "--metrics-url, or --prometheus-url and --pod",
    )
    parser.add_argument(
        "--metrics-url",
        help="with --grpc-url: that server's metrics URL (http://host:port/metrics), which a "
        "local Prometheus then scrapes",
    )
    parser.add_argument(
        "--prometheus-url",
        help="query this Prometheus (the cluster's, which scrapes the pod under load) instead "
        "of starting a local one; needs --pod",
    )
    parser.add_argument("--pod", help="with --prometheus-url: the pod under load")
    parser.add_argument(
        "--namespace",
        help="with --prometheus-url: the pod's namespace (default: a pod of that name in any "
        "namespace)",
    )
    parser.add_argument(
        "--measurement-interval-ms",
        type=int,
        default=5000,
        help="perf_analyzer measurement window per level, in ms",
    )
    parser.add_argument(
        "--stability-percentage",
        type=float,
        default=30.0,
        help="perf_analyzer's; raise it on a busy machine",
    )
    add_scrape_interval(parser)
    parser.add_argument(
        "--component",
        type=Path,
        default=DEFAULT_COMPONENT,
        help="folder to write the calibrated component (kustomization.yaml) into",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help="folder for the measurements: perf_analyzer's files, the input data, the local "
        "Prometheus' data",
    )
