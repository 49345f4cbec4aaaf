"""Offered load far above capacity: the excess is refused at once, accepted requests stay fast.

First the server's capacity is measured with a short closed-loop run; then requests arrive at
`overload_factor` times that rate (open loop, gRPC), while a few HTTP clients send too, for
`duration_s`. The composing models' queue policies (model_repository/*/config.pbtxt) must turn
the excess into UNAVAILABLE / HTTP 503 answers, quickly, while the requests they accept keep a
latency bounded by the queue timeouts instead of growing with the backlog.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path

from google.protobuf import text_format
from inference_tools.local_server import LocalTritonServer
from inference_tools.model_config import read_model_config

from lab.reliability.load import (
    ClosedLoopLoad,
    Outcome,
    latency_percentile_s,
    open_loop_grpc,
)
from lab.reliability.report import ScenarioResult
from python_backend.contract import COMPOSING_MODELS

REFUSED_STATUSES = ("UNAVAILABLE", "503")
CAPACITY_PROBE_S = 4.0
# A refusal for a full queue is a lookup and an error message; 100 ms leaves room for a busy
# 2-core machine, and is still far below any accepted request's latency under this load.
FAST_REFUSAL_S = 0.1
# On a machine so loaded that 100 ms is not enough for any answer, a refusal still counts as
# fast when it took at most this share of the accepted requests' median (which a refusal after
# a wait in the queue would reach): a bound measured in the same run, on the same machine.
FAST_REFUSAL_SHARE_OF_ACCEPTED = 0.25


def fast_refusal_bound_s(accepted_median_s: float) -> float:
    return max(FAST_REFUSAL_S, FAST_REFUSAL_SHARE_OF_ACCEPTED * accepted_median_s)


def queue_timeouts_s(model_repository: Path) -> dict[str, float]:
    """Each composing model's queue timeout (0 where none is set)."""
    timeouts = {}
    for model in COMPOSING_MODELS:
        config = read_model_config(model_repository / model / "config.pbtxt")
        policy = config.dynamic_batching.default_queue_policy
        timeouts[model] = policy.default_timeout_microseconds / 1e6
    return timeouts


def latency_bound_s(model_repository: Path, execution_allowance_s: float = 2.0) -> float:
    """The longest an accepted request may take: every queue's timeout plus execution time."""
    return sum(queue_timeouts_s(model_repository).values()) + execution_allowance_s


def without_queue_limits(model_repository: Path, copy_to: Path) -> Path:
    """A copy of the repository whose composing models have no queue policy (the control)."""
    shutil.copytree(
        model_repository,
        copy_to,
        symlinks=True,
        ignore=shutil.ignore_patterns("*.onnx", "__pycache__"),
    )
    for onnx in model_repository.glob("*/*/*.onnx"):
        (copy_to / onnx.relative_to(model_repository)).symlink_to(onnx.resolve())
    for model in COMPOSING_MODELS:
        path = copy_to / model / "config.pbtxt"
        config = read_model_config(path)
        config.dynamic_batching.ClearField("default_queue_policy")
        path.write_text(text_format.MessageToString(config))
    return copy_to


def _measure(
    model_repository: Path,
    duration_s: float,
    overload_factor: float,
    http_workers: int,
    max_rate_per_s: float,
    work_dir: Path | None,
    grpc_retry: bool = False,
) -> tuple[float, float, list[Outcome], list[Outcome]]:
    with LocalTritonServer(model_repository, work_dir=work_dir) as server:
        with ClosedLoopLoad({"grpc": server.grpc_url}, workers=8) as probe_load:
            threading.Event().wait(CAPACITY_PROBE_S)
        capacity_per_s = len(probe_load.record.snapshot()) / CAPACITY_PROBE_S
        rate = min(max_rate_per_s, capacity_per_s * overload_factor)
        # HTTP clients pause briefly between requests, as a client told 503 would.
        http = ClosedLoopLoad({"http": server.http_url}, workers=http_workers, think_time_s=0.01)
        with http as http_load:
            record = open_loop_grpc(server.grpc_url, rate, duration_s, retry=grpc_retry)
    http_outcomes = http_load.record.snapshot()
    return capacity_per_s, rate, record.snapshot() + http_outcomes, http_outcomes


def run(
    model_repository: Path,
    *,
    duration_s: float = 15.0,
    overload_factor: float = 4.0,
    http_workers: int = 2,
    max_rate_per_s: float = 1500.0,
    queue_limits: bool = True,
    grpc_retry: bool = False,
    work_dir: Path | None = None,
) -> ScenarioResult:
    """With `queue_limits=False` the same load meets a copy of the repository without queue
    policies: the control, where accepted requests' latency grows past the bound. With
    `grpc_retry` the open-loop gRPC client retries UNAVAILABLE (inference_tools.grpc_retry)."""
    bound_s = latency_bound_s(model_repository)
    with tempfile.TemporaryDirectory(prefix="no-queue-limits-") as scratch:
        served = (
            model_repository
            if queue_limits
            else without_queue_limits(model_repository, Path(scratch) / "repository")
        )
        measured = _measure(
            served, duration_s, overload_factor, http_workers, max_rate_per_s, work_dir, grpc_retry
        )
    capacity_per_s, rate, outcomes, http_outcomes = measured

    accepted = [o for o in outcomes if o.ok]
    refused = [o for o in outcomes if o.status in REFUSED_STATUSES]
    other: list[Outcome] = [o for o in outcomes if not o.ok and o.status not in REFUSED_STATUSES]
    queue_full = [o for o in refused if "maximum queue size" in o.message]
    http_refused = [o for o in http_outcomes if o.status == "503"]
    accepted_max_s = max((o.latency_s for o in accepted), default=float("nan"))
    queue_full_median_s = latency_percentile_s(queue_full, 50)
    refusal_bound_s = fast_refusal_bound_s(latency_percentile_s(accepted, 50))
    if queue_limits:
        passed = (
            bool(accepted)
            and bool(queue_full)
            and not other
            and accepted_max_s <= bound_s
            and queue_full_median_s <= refusal_bound_s
        )
    else:
        passed = accepted_max_s > bound_s
    return ScenarioResult(
        scenario="overload"
        + ("" if queue_limits else " without queue limits (control)")
        + (", gRPC clients retrying" if grpc_retry else ""),
        load=f"{rate:.0f} req/s offered open loop over gRPC ({overload_factor:g}x the "
        f"{capacity_per_s:.0f} req/s measured) + {http_workers} HTTP clients, {duration_s:g} s",
        faults="none: demand alone",
        requests_sent=len(outcomes),
        requests_failed=len(refused) + len(other),
        recovery_s=None,
        passed=passed,
        notes=f"{len(refused)} refused with UNAVAILABLE/503 (median "
        f"{latency_percentile_s(refused, 50) * 1000:.0f} ms), other errors {len(other)}; "
        f"accepted p50 {latency_percentile_s(accepted, 50):.2f} s, p99 "
        f"{latency_percentile_s(accepted, 99):.2f} s, max {accepted_max_s:.2f} s "
        f"(bound {bound_s:.1f} s)",
        details={
            "capacity_per_s": capacity_per_s,
            "offered_per_s": rate,
            "accepted": len(accepted),
            "refused": len(refused),
            "queue_full": len(queue_full),
            "http_refused_503": len(http_refused),
            "other_errors": [f"{o.status}: {o.message}" for o in other[:5]],
            "accepted_max_s": accepted_max_s,
            "accepted_p99_s": latency_percentile_s(accepted, 99),
            "queue_full_median_s": queue_full_median_s,
            "fast_refusal_bound_s": refusal_bound_s,
            "latency_bound_s": bound_s,
            "refusal_messages": sorted({o.message for o in refused})[:5],
        },
    )
