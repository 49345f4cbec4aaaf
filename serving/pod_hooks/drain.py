#!/usr/bin/env python3
"""Drain a Triton server before it gets SIGTERM: wait until no inference is in flight.

Triton 2.51 fails ensemble requests that are still inside the server when it is told to stop
(the composing models' schedulers refuse the next step at once). So the stop sequence is ours:

1. stop routing new requests to the server (Kubernetes does this when the pod starts
   terminating; a local caller stops its own clients), and wait `propagation_s` for that to take
   effect everywhere, still serving whatever arrives;
2. exactly, where the server runs in explicit model-control mode: unload every model, entry
   models first, and wait until Triton has released each one, which it does only when the last
   request holding it has been answered (unload_drain.py);
3. otherwise (the server refuses unloads): poll until the server is quiet for `quiet_s`: no
   request pending, no request or batch finishing, no GPU busy (Triton's metrics), and the
   server's processes using almost no CPU (/proc). A batch that executes without CPU or GPU
   leaves no trace there: this fallback is a guess, and it says so in its log;
4. return when drained or when `deadline_s` (counted from the start) has passed: the caller then
   sends SIGTERM.

The container runs this file as its preStop hook (the image copies this unit, serving/pod_hooks/,
whole and links /opt/scalable-inference-server/bin/triton-drain to this file), and the local
tooling calls `drain_server` or `inference-tools drain`, so both replay the same sequence.
docs/reliability.md has the evidence and the limits.
Standard library only: the serving image's Python has none of this project's dependencies.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

# Run as a file (the image's triton-drain, or `python -I drain.py`), the unit's folder is not
# importable as a package: put the folder that holds it first on sys.path.
if not __package__:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pod_hooks.model_roles import ADMIN_KEY_ENV
from pod_hooks.prometheus_text import samples
from pod_hooks.unload_drain import EXACT_FLAGS, ServerGone, UnloadRefused, unload_drain

PENDING_METRIC = "nv_inference_pending_request_count"
# Triton's per-GPU utilisation (0.0-1.0, over its --metrics-interval-ms): the trace an ensemble
# step executing on a GPU leaves, where the host CPU stays idle.
GPU_UTILIZATION_METRIC = "nv_gpu_utilization"
# Counters that move whenever a request or a batch finishes, in any model. Neither they nor the
# pending gauge see a batch that a backend is executing (seen on 2.51: 16 ensemble requests
# inside one 0.7 s ONNX execution, nothing pending, no counter moving), so the CPU time of the
# server's processes is watched as well.
PROGRESS_METRICS = (
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_exec_count",
)
DEFAULT_QUIET_S = 1.0
DEFAULT_POLL_INTERVAL_S = 0.2
SCRAPE_TIMEOUT_S = 2.0
# An idle tritonserver used 0.3 % of a core here, one executing a batch 60-100 %; above this
# share of one core over the quiet interval the server counts as busy.
DEFAULT_BUSY_CPU_CORES = 0.05
# An idle GPU reads 0; any kernel running during the sampling interval reads above this.
BUSY_GPU_UTILIZATION = 0.01


@dataclass(frozen=True)
class Activity:
    """What one scrape of the metrics endpoint says about work inside the server."""

    pending_requests: float
    progress_count: float
    gpu_utilization: float = 0.0  # the busiest GPU's


@dataclass(frozen=True)
class DrainResult:
    idle: bool  # False: the deadline passed with work still in flight
    reason: str
    waited_s: float
    last_activity: Activity | None
    # What decided: "unload" (Triton's own in-flight accounting) or "quiet" (metrics and CPU).
    mechanism: str = "quiet"


def parse_activity(metrics_text: str) -> Activity:
    """Sum the pending gauge and the progress counters over every model and version; the
    busiest GPU's utilisation."""
    pending = 0.0
    progress = 0.0
    gpu = 0.0
    for name, _labels, value in samples(metrics_text):
        if name == PENDING_METRIC:
            pending += value
        elif name == GPU_UTILIZATION_METRIC:
            gpu = max(gpu, value)
        elif name in PROGRESS_METRICS:
            progress += value
    return Activity(pending_requests=pending, progress_count=progress, gpu_utilization=gpu)


def process_tree_cpu_seconds(root_pid: int) -> float | None:
    """User + system CPU seconds of `root_pid` and all its descendants (the Python-backend stubs
    are tritonserver's children), from /proc; None where the process cannot be read."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # exited while we looked
        pid = int(stat_path.parent.name)
        parents[pid] = int(fields[1])
        ticks[pid] = int(fields[11]) + int(fields[12])
    if root_pid not in ticks:
        return None
    tree, frontier = {root_pid}, [root_pid]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(ticks[pid] for pid in tree) / os.sysconf("SC_CLK_TCK")


def scrape_activity(metrics_url: str) -> Activity:
    with urllib.request.urlopen(metrics_url, timeout=SCRAPE_TIMEOUT_S) as response:
        return parse_activity(response.read().decode("utf-8", errors="replace"))


def _refused(error: BaseException) -> bool:
    """Whether a scrape failed because nothing listens (urllib wraps the socket's error)."""
    return isinstance(error, ConnectionRefusedError) or isinstance(
        getattr(error, "reason", None), ConnectionRefusedError
    )


def drain_server(
    metrics_url: str,
    *,
    propagation_s: float,
    deadline_s: float,
    quiet_s: float = DEFAULT_QUIET_S,
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S,
    cpu_seconds: Callable[[], float | None] = lambda: None,
    busy_cpu_cores: float = DEFAULT_BUSY_CPU_CORES,
    scrape: Callable[[str], Activity] = scrape_activity,
    http_url: str | None = None,
    admin_key: str | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] = lambda message: None,
) -> DrainResult:
    """Wait out the propagation delay, then until the server holds no request or the deadline
    passes: exactly by unloading where `http_url` is given and the server allows it, else by
    watching for quiet."""
    if propagation_s > deadline_s:
        raise ValueError("the propagation wait must fit inside the deadline")
    start = clock()
    log(f"waiting {propagation_s:g}s for routers to stop sending requests")
    sleep(propagation_s)

    if http_url:
        try:
            outcome = unload_drain(
                http_url,
                admin_key=admin_key,
                deadline_s=max(0.0, deadline_s - (clock() - start)),
                poll_interval_s=poll_interval_s,
                clock=clock,
                sleep=sleep,
                log=log,
            )
            return DrainResult(
                outcome.drained, outcome.reason, clock() - start, None, mechanism="unload"
            )
        except (UnloadRefused, OSError, ValueError) as error:  # refused, or no usable answer
            log(
                f"exact drain impossible: {error}. Falling back to watching for quiet, which "
                "cannot see a batch executing without CPU or GPU; start tritonserver with "
                f"{EXACT_FLAGS} (and give the admin key in {ADMIN_KEY_ENV}) for an exact drain"
            )
        except ServerGone as error:
            log(f"{error}: watching the metrics endpoint instead")

    last: Activity | None = None
    unreadable_since: float | None = None
    quiet_since = clock()
    cpu_at_quiet_start = cpu_seconds()
    while True:
        now = clock()
        try:
            activity = scrape(metrics_url)
        except (OSError, ValueError) as error:
            if _refused(error):
                # Nothing listens: no server to drain (it exited or never started).
                log("metrics endpoint refuses connections: the server is gone")
                return DrainResult(True, "server gone", now - start, last)
            # A server that stops answering may still hold requests: keep it up, bounded.
            # The deadline is overshot by one scrape timeout at most.
            now = clock()
            if unreadable_since is None:
                unreadable_since = now
                log(
                    f"metrics endpoint {metrics_url} not answering ({error}); "
                    f"waiting until the deadline ({deadline_s:g}s) before the stop"
                )
            if now - start >= deadline_s:
                log(
                    f"deadline of {deadline_s:g}s passed; metrics unreadable for "
                    f"{now - unreadable_since:.1f}s, in-flight work unknown"
                )
                return DrainResult(False, "metrics unreadable", now - start, last)
            sleep(min(poll_interval_s, max(0.0, deadline_s - (now - start))))
            continue
        if unreadable_since is not None:
            log(f"metrics endpoint answers again after {now - unreadable_since:.1f}s")
            unreadable_since, last = None, None
        cpu = cpu_seconds()
        busy = (
            last is None
            or activity.pending_requests > 0
            or activity.progress_count != last.progress_count
            or activity.gpu_utilization > BUSY_GPU_UTILIZATION
            or (
                cpu is not None
                and cpu_at_quiet_start is not None
                and cpu - cpu_at_quiet_start > busy_cpu_cores * max(now - quiet_since, quiet_s)
            )
        )
        if busy:
            quiet_since, cpu_at_quiet_start = now, cpu
        last = activity
        if now - quiet_since >= quiet_s:
            log(f"idle after {now - start:.1f}s")
            return DrainResult(True, "idle", now - start, activity)
        if now - start >= deadline_s:
            log(f"deadline of {deadline_s:g}s passed with work in flight: {activity}")
            return DrainResult(False, "deadline passed", now - start, activity)
        sleep(min(poll_interval_s, max(0.0, deadline_s - (now - start))))


def _log_to(path: str | None) -> Callable[[str], None]:
    """A logger writing to `path` if it opens (e.g. /proc/1/fd/1: the container's log), else
    to stderr. A preStop hook's own output is discarded by the kubelet."""
    stream: TextIO = sys.stderr
    if path:
        try:
            stream = open(path, "a", buffering=1)  # noqa: SIM115 (open for the process lifetime)
        except OSError:
            stream = sys.stderr

    def log(message: str) -> None:
        print(f"triton-drain: {message}", file=stream, flush=True)

    return log


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--metrics-url",
        default="http://127.0.0.1:8002/metrics",
        help="Triton's Prometheus endpoint (default: %(default)s)",
    )
    parser.add_argument(
        "--http-url",
        default="http://127.0.0.1:8000",
        help="Triton's HTTP endpoint, whose repository API drains exactly by unloading the "
        f"models (needs {EXACT_FLAGS}; the admin key, if any, from ${ADMIN_KEY_ENV}); "
        "empty to only watch the metrics (default: %(default)s)",
    )
    parser.add_argument(
        "--propagation-seconds",
        type=float,
        default=10.0,
        help="wait this long first, for proxies to stop routing here (default: %(default)s)",
    )
    parser.add_argument(
        "--deadline-seconds",
        type=float,
        default=40.0,
        help="give up this long after starting, idle or not (default: %(default)s)",
    )
    parser.add_argument(
        "--quiet-seconds",
        type=float,
        default=DEFAULT_QUIET_S,
        help="idle means nothing pending and no counter moving this long (default: %(default)s)",
    )
    parser.add_argument(
        "--server-pid",
        type=int,
        default=1,
        help="tritonserver's process id, whose CPU time (children included) tells whether it is "
        "still executing; 0 to ignore CPU time (default: %(default)s, the container's first "
        "process)",
    )
    parser.add_argument(
        "--busy-cpu-cores",
        type=float,
        default=DEFAULT_BUSY_CPU_CORES,
        help="above this many cores of CPU the server is busy (default: %(default)s)",
    )
    parser.add_argument("--log-file", help="append progress here instead of stderr")


def run(args: argparse.Namespace) -> int:
    result = drain_server(
        args.metrics_url,
        propagation_s=args.propagation_seconds,
        deadline_s=args.deadline_seconds,
        quiet_s=args.quiet_seconds,
        cpu_seconds=lambda: process_tree_cpu_seconds(args.server_pid) if args.server_pid else None,
        busy_cpu_cores=args.busy_cpu_cores,
        http_url=args.http_url or None,
        admin_key=os.environ.get(ADMIN_KEY_ENV) or None,
        log=_log_to(args.log_file),
    )
    # Non-zero when work was still in flight: for a preStop hook that becomes a FailedPreStopHook
    # event on the pod (SIGTERM follows regardless), which is what an operator should see.
    return 0 if result.idle else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="triton-drain", description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.set_defaults(func=run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
