"""The autoscaling loop on one machine, with real parts end to end.

A real Triton serves under stepped load from perf_analyzer; a real Prometheus scrapes it with the
ServiceMonitor's relabelling and evaluates the recording rules of the rendered PrometheusRule;
every sync period the adapter's metrics queries (and KEDA's queries), taken from the rendered
output and filled in as the adapter fills them, are evaluated by that Prometheus; the values go
through the HPA algorithm with the rendered HPA's (and ScaledObject's) own settings.

What one machine cannot do is start the replicas the HPA asks for. The decision is written back
as the controller writes it (the target's replica count), and the replicas beyond the real one
stay "not yet ready": that is how the controller sees new pods until their models are loaded,
and it counts them at 0 on a scale-up and ignores them on a scale-down, as in a cluster.
Only the clocks are shortened: scrape and rule evaluation every second, an HPA sync every few
seconds; the settings inside the rendered objects are used as they are.
"""

from __future__ import annotations

import csv
import logging
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from inference_tools.autoscaling import rendered_settings
from inference_tools.autoscaling.hpa_spec import HPASpec
from inference_tools.autoscaling.servicemonitor import LocalTarget, scrape_configs
from inference_tools.local_server import LocalTritonServer
from inference_tools.perf.measured_model import choose_measured_model
from inference_tools.perf.perf_analyzer import LoadLevel, PerfAnalyzerSettings
from inference_tools.prometheus_runner import LocalPrometheus
from inference_tools.triton_runtime import perf_analyzer_env
from prometheus_api_client import PrometheusConnect

from lab.autoscaling.hpa import HorizontalPodAutoscaler, Observation, Pod

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadPhase:
    name: str
    concurrency: int  # requests in flight from perf_analyzer; 0 for no load
    duration_s: float


DEFAULT_PHASES = (
    LoadPhase("low", 1, 30.0),
    LoadPhase("high", 24, 60.0),
    LoadPhase("none", 0, 150.0),
)


@dataclass(frozen=True)
class LoopSettings:
    hpa_kustomization: Path
    keda_kustomization: Path | None = None
    phases: tuple[LoadPhase, ...] = DEFAULT_PHASES
    scrape_interval_s: int = 1
    sync_period_s: float = 5.0
    # The last phase ends early once both autoscalers are back at their minimum.
    stop_when_back_at_minimum: bool = True


@dataclass
class LoopRow:
    time_s: float
    phase: str
    offered_concurrency: int
    throughput_per_s: float | None
    queue_time_per_request_us: float | None
    pending_requests: float | None
    requests_per_second: float | None
    hpa_replicas: int
    hpa_reason: str
    keda_replicas: int | None


@dataclass
class LoopResult:
    rows: list[LoopRow]
    phases: tuple[LoadPhase, ...]
    phase_starts_s: dict[str, float]
    hpa: HPASpec
    keda: HPASpec | None
    scrape_interval_s: int
    sync_period_s: float
    queue_target_us: float
    pending_target: float
    request_rate_target: float
    extra: dict[str, Any] = field(default_factory=dict)

    def first_time(self, after_s: float, predicate: Callable[[LoopRow], bool]) -> float | None:
        for row in self.rows:
            if row.time_s >= after_s and predicate(row):
                return row.time_s
        return None

    def scale_out_delay_s(self, phase: str = "high", keda: bool = False) -> float | None:
        """Seconds from the start of `phase` to the first decision above the minimum."""
        start = self.phase_starts_s[phase]
        minimum = (self.keda if keda else self.hpa).min_replicas  # type: ignore[union-attr]
        found = self.first_time(
            start,
            lambda r: ((r.keda_replicas or 0) if keda else r.hpa_replicas) > minimum,
        )
        return None if found is None else found - start

    def back_to_minimum_delay_s(self, phase: str = "none") -> float | None:
        """Seconds from the start of `phase` until the HPA is back at its minimum."""
        start = self.phase_starts_s[phase]
        found = self.first_time(start, lambda r: r.hpa_replicas == self.hpa.min_replicas)
        return None if found is None else found - start


class ClosedLoopAutoscaler:
    """One HPA object driven by Prometheus, writing its decision back as the replica count."""

    def __init__(self, spec: HPASpec, real_pod: str, phantom_prefix: str) -> None:
        self.controller = HorizontalPodAutoscaler(spec)
        self.replicas = spec.min_replicas
        self.real_pod = real_pod
        self.phantom_prefix = phantom_prefix

    def pods(self) -> list[Pod]:
        # The replicas this machine cannot start stay Pending, as pods waiting for a node do.
        return [Pod(self.real_pod)] + [
            Pod(f"{self.phantom_prefix}-{i}", ready=False, pending=True)
            for i in range(1, self.replicas)
        ]

    def sync(self, now_s: float, observe: Callable[[list[Pod]], Mapping[str, Observation]]) -> str:
        pods = self.pods()
        decision = self.controller.reconcile(now_s, self.replicas, pods, observe(pods))
        self.replicas = decision.desired_replicas
        return decision.reason


def _vector(prometheus: PrometheusConnect, query: str) -> list[dict[str, Any]]:
    return prometheus.custom_query(query)


def _scalar(prometheus: PrometheusConnect, query: str) -> float | None:
    result = _vector(prometheus, query)
    return float(result[0]["value"][1]) if result else None


class LoadGenerator:
    """perf_analyzer at a fixed concurrency, for as long as the phase lasts."""

    def __init__(self, server: LocalTritonServer, work_dir: Path) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = work_dir
        # The repository's default measured model (model_roles), with its own inputs.
        self.measured_model = choose_measured_model(
            server.model_repository, None, work_dir / "input-data.json"
        )
        self.settings = PerfAnalyzerSettings(
            model=self.measured_model.model,
            url=server.grpc_url,
            protocol="grpc",
            input_data=self.measured_model.input_data,
            # One long window: the phase ends it, not perf_analyzer's stability search.
            measurement_interval_ms=3_600_000,
            max_trials=1,
            verbose_csv=False,
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, phase: LoadPhase) -> None:
        self.stop()
        if phase.concurrency <= 0:
            return
        command = self.settings.command(
            LoadLevel("concurrency", phase.concurrency), f"{phase.name}.csv"
        )
        log = (self.work_dir / f"perf_analyzer-{phase.name}.log").open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=self.work_dir,
            env=perf_analyzer_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # perf_analyzer takes its time to wind down on SIGINT while requests are queued; the
        # phase has ended, so the client goes at once (the server finishes what it accepted).
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _per_pod(result: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    return {sample["metric"]["pod"]: float(sample["value"][1]) for sample in result}


def run_loop(
    settings: LoopSettings,
    server: LocalTritonServer,
    out_dir: Path,
    on_row: Callable[[LoopRow], None] | None = None,
) -> LoopResult:
    hpa_rendered = rendered_settings.render(settings.hpa_kustomization)
    keda_rendered = (
        rendered_settings.render(settings.keda_kustomization)
        if settings.keda_kustomization
        else None
    )
    hpa_spec = rendered_settings.hpa_spec(hpa_rendered)
    adapter_rules = rendered_settings.adapter_rules(hpa_rendered)
    deployment = hpa_rendered.one("Deployment")
    namespace = deployment["metadata"].get("namespace", "default")
    real_pod = f"{deployment['metadata']['name']}-local-0"

    out_dir.mkdir(parents=True, exist_ok=True)
    prometheus_config = {
        "global": {
            "scrape_interval": f"{settings.scrape_interval_s}s",
            "evaluation_interval": f"{settings.scrape_interval_s}s",
        },
        "scrape_configs": scrape_configs(
            hpa_rendered,
            [LocalTarget(server.metrics_url.split("/")[2], real_pod)],
            scrape_interval=f"{settings.scrape_interval_s}s",
        ),
    }
    rule_file = rendered_settings.with_evaluation_interval(
        rendered_settings.prometheus_rule_file(hpa_rendered), f"{settings.scrape_interval_s}s"
    )
    # In the order the calibrated component patches them: queue time, pending, request rate.
    queue_metric, pending_metric, rate_metric = (m.name for m in hpa_spec.metrics)
    result = LoopResult(
        rows=[],
        phases=settings.phases,
        phase_starts_s={},
        hpa=hpa_spec,
        keda=None,
        scrape_interval_s=settings.scrape_interval_s,
        sync_period_s=settings.sync_period_s,
        queue_target_us=hpa_spec.metrics[0].target,
        pending_target=hpa_spec.metrics[1].target,
        request_rate_target=hpa_spec.metrics[2].target,
    )
    with LocalPrometheus(
        prometheus_config, {"triton-rules.yaml": rule_file}, work_dir=out_dir / "prometheus"
    ) as prometheus_process:
        prometheus = PrometheusConnect(url=prometheus_process.url, disable_ssl=True)
        hpa = ClosedLoopAutoscaler(hpa_spec, real_pod, f"{deployment['metadata']['name']}-new")
        keda = None
        keda_queries: dict[str, str] = {}
        if keda_rendered is not None:
            scaled_object = keda_rendered.one("ScaledObject")
            result.keda = rendered_settings.keda_hpa_spec(scaled_object)
            keda = ClosedLoopAutoscaler(
                result.keda, real_pod, f"{deployment['metadata']['name']}-keda"
            )
            keda_queries = {t.name: t.query for t in rendered_settings.keda_triggers(scaled_object)}

        def adapter_observations(pods: list[Pod]) -> dict[str, Observation]:
            names = [p.name for p in pods]
            return {
                rule.metric_name: _per_pod(
                    _vector(
                        prometheus, rendered_settings.fill_adapter_query(rule, namespace, names)
                    )
                )
                for rule in adapter_rules
            }

        def keda_observations(_: list[Pod]) -> dict[str, Observation]:
            return {name: _scalar(prometheus, query) for name, query in keda_queries.items()}

        load = LoadGenerator(server, out_dir / "load")
        was_above_minimum = False
        start = time.monotonic()
        try:
            for index, phase in enumerate(settings.phases):
                load.start(phase)
                phase_start = time.monotonic() - start
                result.phase_starts_s[phase.name] = phase_start
                LOG.info(
                    "phase %s: concurrency %d for %.0fs",
                    phase.name,
                    phase.concurrency,
                    phase.duration_s,
                )
                last_phase = index == len(settings.phases) - 1
                while (now := time.monotonic() - start) < phase_start + phase.duration_s:
                    reason = hpa.sync(now, adapter_observations)
                    if keda is not None:
                        keda.sync(now, keda_observations)
                    pod_values = adapter_observations([Pod(real_pod)])
                    row = LoopRow(
                        time_s=round(now, 2),
                        phase=phase.name,
                        offered_concurrency=phase.concurrency,
                        throughput_per_s=_scalar(
                            prometheus,
                            "sum(rate(nv_inference_request_success"
                            f'{{model="{load.measured_model.model}"}}[5s]))',
                        ),
                        queue_time_per_request_us=_first(pod_values.get(queue_metric)),
                        pending_requests=_first(pod_values.get(pending_metric)),
                        requests_per_second=_first(pod_values.get(rate_metric)),
                        hpa_replicas=hpa.replicas,
                        hpa_reason=reason,
                        keda_replicas=keda.replicas if keda else None,
                    )
                    result.rows.append(row)
                    if on_row is not None:
                        on_row(row)
                    at_minimum = hpa.replicas == hpa_spec.min_replicas and (
                        keda is None or keda.replicas == keda.controller.spec.min_replicas
                    )
                    was_above_minimum = was_above_minimum or not at_minimum
                    if (
                        last_phase
                        and settings.stop_when_back_at_minimum
                        and at_minimum
                        and was_above_minimum
                    ):
                        break
                    time.sleep(max(0.0, settings.sync_period_s - (time.monotonic() - start - now)))
        finally:
            load.stop()
    write_csv(result.rows, out_dir / "autoscale-timeline.csv")
    return result


def _first(values: Observation) -> float | None:
    if isinstance(values, Mapping):
        return next(iter(values.values()), None)
    return values


def write_csv(rows: Sequence[LoopRow], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(LoopRow.__dataclass_fields__))
        writer.writeheader()
        for row in rows:
            writer.writerow(asdict(row))
    return path
