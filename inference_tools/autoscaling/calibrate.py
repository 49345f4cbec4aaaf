"""Calibrated targets: the signal values at which p95 latency crosses the latency objective.

perf_analyzer sweeps the load on one server (the local Triton, or one pod of a deployment);
at each level the autoscaling signals are computed by Prometheus with the rendered recording
rules' own expressions, their windows stretched to the level's duration so that each value
covers exactly that level. Where p95 latency crosses the objective between two levels, each
signal is interpolated to the crossing; the targets are a fraction of that (headroom: the HPA
should act before the objective is lost, not at it) and are written as a kustomize component
with the measurements in a comment.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from prometheus_api_client import PrometheusConnect

from inference_tools.autoscaling import rendered_settings
from inference_tools.manifests.render import Render
from inference_tools.perf.perf_analyzer import (
    LoadLevel,
    Measurement,
    PerfAnalyzerError,
    PerfAnalyzerSettings,
    run_level,
)

LOG = logging.getLogger(__name__)
QUEUE_RULE = "namespace_service_pod:triton_queue_time_per_request_us:rate1m"
PENDING_RULE = "namespace_service_pod:triton_pending_requests:avg_over_time30s"
REQUEST_RATE_RULE = "namespace_service_pod:triton_requests_per_second:rate45s"
# The queue signals' targets as a share of their values at the objective. The request rate
# carries the load-proportional part and acts before the objective is lost; the queue signals
# catch a saturation it cannot see (e.g. longer texts), so they act at the objective itself.
QUEUE_HEADROOM = 1.0
# The request-rate target as a share of the rate at the objective: the HPA lets the metric run
# 10% over its target before it adds a pod, so 0.9 puts that point at the objective.
REQUEST_RATE_HEADROOM = 0.9
# What perf_analyzer prints when Triton's queue policy refuses requests.
OVERLOAD_SIGNS = ("Request timeout expired", "Exceeds maximum queue size", "UNAVAILABLE")


class CalibrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class LevelResult:
    level: LoadLevel
    seconds: float
    throughput_per_s: float
    p95_latency_ms: float
    queue_time_per_request_us: float
    pending_requests: float
    requests_per_second: float = 0.0


@dataclass(frozen=True)
class Calibration:
    objective_ms: float
    headroom: float
    queue_time_at_objective_us: float
    pending_at_objective: float
    between: tuple[LevelResult, LevelResult]
    requests_per_second_at_objective: float = 0.0

    @property
    def request_rate_target(self) -> float:
        return self.requests_per_second_at_objective * REQUEST_RATE_HEADROOM

    @property
    def queue_target_us(self) -> float:
        return self.queue_time_at_objective_us * self.headroom

    @property
    def pending_target(self) -> float:
        return self.pending_at_objective * self.headroom


def over_window(expression: str, seconds: float) -> str:
    """A rule expression with every range selector set to `seconds`; a subquery steps every
    second, so that even a short level holds enough of its points."""
    window = f"{max(2, round(seconds))}s"
    return rendered_settings.RANGE_SELECTOR.sub(
        lambda m: f"[{window}:1s]" if m.group(3) else f"[{window}]", expression
    )


def signal_expressions(rendered: Render) -> dict[str, str]:
    recorded = rendered_settings.recording_rules(rendered)
    missing = {QUEUE_RULE, PENDING_RULE, REQUEST_RATE_RULE} - set(recorded)
    if missing:
        raise CalibrationError(f"the rendered PrometheusRule lacks {sorted(missing)}")
    return {
        "queue": recorded[QUEUE_RULE],
        "pending": recorded[PENDING_RULE],
        "rate": recorded[REQUEST_RATE_RULE],
    }


def evaluate_for_pod(
    prometheus: PrometheusConnect, expression: str, pod: str, namespace: str | None = None
) -> float:
    for sample in prometheus.custom_query(expression):
        labels = sample["metric"]
        if labels.get("pod") == pod and (namespace is None or labels.get("namespace") == namespace):
            return float(sample["value"][1])
    raise CalibrationError(f"no value for pod {pod} from: {expression}")


def sweep(
    settings: PerfAnalyzerSettings,
    levels: Sequence[LoadLevel],
    prometheus: PrometheusConnect,
    expressions: Mapping[str, str],
    pod: str,
    out_dir: Path,
    namespace: str | None = None,
    settle_s: float = 2.0,
    on_level: Callable[[LevelResult], None] | None = None,
) -> list[LevelResult]:
    """One perf_analyzer run per level; the signals over exactly that run."""
    results = []
    for level in levels:
        started = time.monotonic()
        try:
            measurement: Measurement = run_level(
                settings, level, out_dir, f"calibrate-{level.slug}"
            )
        except PerfAnalyzerError as error:
            if any(sign in str(error) for sign in OVERLOAD_SIGNS):
                # Requests refused by the queue policy (or timed out) end perf_analyzer's run:
                # the server is past what it can serve; heavier levels would only fail too.
                LOG.warning("stopping the sweep at %s: requests refused", level.label)
                break
            # An unstable level (a noisy machine) says nothing about capacity: skip it.
            LOG.warning("skipping %s: %s", level.label, str(error).splitlines()[0])
            continue
        # Let the last scrape of the level land before reading it.
        time.sleep(settle_s)
        seconds = time.monotonic() - started
        result = LevelResult(
            level=level,
            seconds=round(seconds, 1),
            throughput_per_s=measurement.throughput_per_s,
            p95_latency_ms=measurement.latency_us[95] / 1000,
            queue_time_per_request_us=evaluate_for_pod(
                prometheus, over_window(expressions["queue"], seconds), pod, namespace
            ),
            pending_requests=evaluate_for_pod(
                prometheus, over_window(expressions["pending"], seconds), pod, namespace
            ),
            requests_per_second=evaluate_for_pod(
                prometheus, over_window(expressions["rate"], seconds), pod, namespace
            ),
        )
        results.append(result)
        if on_level is not None:
            on_level(result)
    return results


def crossing(results: Sequence[LevelResult], objective_ms: float, headroom: float) -> Calibration:
    """Interpolate both signals to where p95 latency reaches the objective."""
    ordered = sorted(results, key=lambda r: r.level.value)
    if not ordered:
        raise CalibrationError("no load levels measured")
    if ordered[0].p95_latency_ms > objective_ms:
        raise CalibrationError(
            f"p95 latency is {ordered[0].p95_latency_ms:.1f} ms at the lightest level already, "
            f"above the {objective_ms:g} ms objective: no queue-based target can meet it"
        )
    for below, above in itertools.pairwise(ordered):
        if below.p95_latency_ms <= objective_ms < above.p95_latency_ms:
            share = (objective_ms - below.p95_latency_ms) / (
                above.p95_latency_ms - below.p95_latency_ms
            )

            def at(value: Callable[[LevelResult], float], b=below, a=above, s=share) -> float:
                return value(b) + s * (value(a) - value(b))

            return Calibration(
                objective_ms=objective_ms,
                headroom=headroom,
                queue_time_at_objective_us=at(lambda r: r.queue_time_per_request_us),
                pending_at_objective=at(lambda r: r.pending_requests),
                between=(below, above),
                requests_per_second_at_objective=at(lambda r: r.requests_per_second),
            )
    raise CalibrationError(
        f"p95 latency stayed within {objective_ms:g} ms up to the heaviest level measured "
        f"({ordered[-1].level.label}, {ordered[-1].p95_latency_ms:.1f} ms): add heavier levels, "
        "or finer ones if the next level failed"
    )


def _targets_comment(calibration: Calibration, results: Sequence[LevelResult], source: str) -> str:
    lines = [
        "# Generated by `inference-tools autoscaling calibrate` (make calibrate); do not edit.",
        f"# Measured on: {source}",
        f"# Latency objective: p95 <= {calibration.objective_ms:g} ms. Each target is the signal's",
        f"# value where p95 crosses it, x {calibration.headroom:g} for the queue signals and",
        f"# x {REQUEST_RATE_HEADROOM:g} for the request rate (the HPA's 10% tolerance).",
        "#",
        "# load level        | seconds | served/s | p95 ms  | queue us/request | pending "
        "| requests/s per pod",
    ]
    for r in sorted(results, key=lambda r: r.level.value):
        lines.append(
            f"# {r.level.label:17} | {r.seconds:7.1f} | {r.throughput_per_s:8.1f} | "
            f"{r.p95_latency_ms:7.1f} | {r.queue_time_per_request_us:16.0f} | "
            f"{r.pending_requests:7.2f} | {r.requests_per_second:8.1f}"
        )
    below, above = calibration.between
    lines += [
        "#",
        f"# p95 crosses {calibration.objective_ms:g} ms between {below.level.label} and "
        f"{above.level.label}:",
        f"#   queue time per request there: {calibration.queue_time_at_objective_us:.0f} us "
        f"-> target {calibration.queue_target_us:.0f} us",
        f"#   pending requests there: {calibration.pending_at_objective:.2f} "
        f"-> target {calibration.pending_target:.2f}",
        f"#   requests per second per pod there: "
        f"{calibration.requests_per_second_at_objective:.1f} "
        f"-> target {calibration.request_rate_target:.1f} (x {REQUEST_RATE_HEADROOM:g})",
        "# Set triton:queue_time_per_request_objective_us and triton:pending_requests_objective",
        "# (components/monitoring) to the values 'there' above: the queue signals are capped",
        "# at twice them.",
    ]
    return "\n".join(lines) + "\n"


def quantity_text(value: float) -> str:
    """A target as the API writes quantities back: whole numbers bare, others in milli-units."""
    from kubernetes.utils.quantity import format_quantity  # see hpa_spec.quantity_value

    if value == int(value):
        return str(int(value))
    return format_quantity(Decimal(str(value)), "m", quantize=Decimal(1))


def component_files(
    calibration: Calibration, results: Sequence[LevelResult], source: str
) -> dict[str, str]:
    """kustomization.yaml of a Component patching the HPA's and the ScaledObject's targets."""
    queue = quantity_text(round(calibration.queue_target_us))
    pending = quantity_text(round(calibration.pending_target, 3))
    rate = quantity_text(round(calibration.request_rate_target, 1))
    comment = _targets_comment(calibration, results, source)
    patches: list[dict[str, Any]] = [
        {
            "target": {"group": "autoscaling", "kind": "HorizontalPodAutoscaler", "name": "triton"},
            "patch": rendered_settings.dump_yaml(
                [
                    {
                        "op": "replace",
                        "path": "/spec/metrics/0/pods/target/averageValue",
                        "value": queue,
                    },
                    {
                        "op": "replace",
                        "path": "/spec/metrics/1/pods/target/averageValue",
                        "value": pending,
                    },
                    {
                        "op": "replace",
                        "path": "/spec/metrics/2/pods/target/averageValue",
                        "value": rate,
                    },
                ]
            ),
        },
        {
            "target": {"group": "keda.sh", "kind": "ScaledObject", "name": "triton"},
            "patch": rendered_settings.dump_yaml(
                [
                    {
                        "op": "replace",
                        "path": "/spec/triggers/0/metadata/threshold",
                        "value": str(round(calibration.queue_target_us)),
                    },
                    {
                        "op": "replace",
                        "path": "/spec/triggers/1/metadata/threshold",
                        "value": f"{calibration.pending_target:.3f}".rstrip("0").rstrip("."),
                    },
                    {
                        "op": "replace",
                        "path": "/spec/triggers/2/metadata/threshold",
                        "value": f"{calibration.request_rate_target:.1f}",
                    },
                ]
            ),
        },
    ]
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1alpha1",
        "kind": "Component",
        "patches": patches,
    }
    note = (
        "# NOTE: JSON6902 by index: metric 0 / trigger 0 is the queue time per request, 1 the\n"
        "# pending requests, 2 the requests per second, as in components/autoscaling-hpa and\n"
        "# autoscaling-keda. A patch whose target is absent (HPA or ScaledObject) changes\n"
        "# nothing.\n"
    )
    return {"kustomization.yaml": comment + note + rendered_settings.dump_yaml(body)}


def write_component(files: Mapping[str, str], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory
