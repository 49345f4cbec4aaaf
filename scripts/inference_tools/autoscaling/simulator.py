"""A capacity SIMULATION: many replicas, the HPA loop, traffic traces, scaling signals compared.

Nothing here is measured on a cluster. Each simulated pod is one batching server whose time per
batch of `b` requests comes from measurements of the local Triton (`ServiceTimes`); a new pod
serves after a start-up time (the measured model load time plus a node/image delay given by
the user). Requests arrive as a Poisson process at the rate of a trace and go to the ready pod
with the fewest requests outstanding (what an L7 gateway does). The monitoring pipeline is
modelled on the deployed one: scrapes every 15 s, the recording rules' windows (queue time per
request over 1 minute, pending requests averaged over 30 s), CPU utilisation averaged over a
minute as metrics-server reports it, and the HPA algorithm (inference_tools.autoscaling.hpa)
with the rendered object's settings every 15 s.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from inference_tools.autoscaling.hpa import (
    RESOURCE_METRIC,
    UTILIZATION,
    HorizontalPodAutoscaler,
    HPASpec,
    MetricTarget,
    Observation,
    Pod,
)

SCRAPE_INTERVAL_S = 15.0
SYNC_PERIOD_S = 15.0
QUEUE_WINDOW_S = 60.0
PENDING_WINDOW_S = 30.0
CPU_WINDOW_S = 60.0
QUEUE_METRIC = "triton_queue_time_per_request_us"
PENDING_METRIC = "triton_pending_requests"
CPU_METRIC = "cpu"


@dataclass(frozen=True)
class ServiceTimes:
    """Seconds one pod needs to serve a batch of each size (measured), interpolated between."""

    batch_sizes: tuple[int, ...]
    seconds: tuple[float, ...]

    def __post_init__(self) -> None:
        if list(self.batch_sizes) != sorted(self.batch_sizes) or not self.batch_sizes:
            raise ValueError("batch sizes must be given in increasing order")

    @property
    def max_batch(self) -> int:
        """The batch size that serves the most requests per second.

        Larger batches than that would lower the pod's throughput exactly when it is behind;
        a deployment tunes max_batch_size / preferred_batch_size to avoid that, and so does
        the simulated batcher.
        """
        return max(zip(self.batch_sizes, self.seconds, strict=True), key=lambda bs: bs[0] / bs[1])[
            0
        ]

    def for_batch(self, size: int) -> float:
        return float(np.interp(size, self.batch_sizes, self.seconds))

    def capacity_per_s(self) -> float:
        """Requests per second one pod serves when every batch is full."""
        return self.max_batch / self.for_batch(self.max_batch)


@dataclass(frozen=True)
class QueuePolicy:
    """Triton's dynamic-batcher queue policy: refuse beyond a queue size or a waiting time."""

    max_queue_size: int = 0  # 0: unbounded
    timeout_s: float = 0.0  # 0: no timeout


@dataclass(frozen=True)
class Trace:
    name: str
    duration_s: float
    rate: Callable[[float], float]  # requests per second at time t


def step_trace(base: float, peak: float, at_s: float = 120.0, duration_s: float = 1200.0) -> Trace:
    return Trace("step", duration_s, lambda t: peak if t >= at_s else base)


def spike_trace(
    base: float, peak: float, at_s: float = 180.0, length_s: float = 120.0, duration_s=900.0
) -> Trace:
    return Trace("spike", duration_s, lambda t: peak if at_s <= t < at_s + length_s else base)


def diurnal_trace(low: float, high: float, period_s: float = 2400.0) -> Trace:
    """One day compressed into `period_s`: night at the start and end, peak in the middle."""
    return Trace(
        "diurnal",
        period_s,
        lambda t: low + (high - low) * 0.5 * (1 - math.cos(2 * math.pi * t / period_s)),
    )


@dataclass
class SimPod:
    name: str
    ready_at_s: float
    queue: deque[float] = field(default_factory=deque)  # arrival times
    in_service: int = 0
    busy_until_s: float = 0.0
    removing: bool = False
    # Counters as Triton exports them, and the gauge.
    queue_duration_total_s: float = 0.0
    success_total: int = 0
    busy_total_s: float = 0.0

    def outstanding(self) -> int:
        return len(self.queue) + self.in_service

    def ready(self, now_s: float) -> bool:
        return now_s >= self.ready_at_s and not self.removing


@dataclass(frozen=True)
class Scrape:
    time_s: float
    queue_duration_total_s: float
    success_total: int
    pending: int
    busy_total_s: float


@dataclass
class SimulationResult:
    signal: str
    trace: str
    latencies_s: list[float]
    completion_times_s: list[float]
    replica_seconds: float
    timeline: list[tuple[float, int, int, float]]  # (t, pods running, pods ready, offered rate)
    objective_s: float
    rejected: int = 0

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else 0.0

    def seconds_over_objective(self, bucket_s: float = 10.0) -> float:
        """Seconds in buckets whose p95 latency (requests finished in them) tops the objective."""
        if not self.latencies_s:
            return 0.0
        buckets: dict[int, list[float]] = {}
        for done, latency in zip(self.completion_times_s, self.latencies_s, strict=True):
            buckets.setdefault(int(done // bucket_s), []).append(latency)
        return bucket_s * sum(
            1 for values in buckets.values() if np.percentile(values, 95) > self.objective_s
        )


def signal_specs(hpa: HPASpec, cpu_target_percent: float = 80.0) -> dict[str, HPASpec]:
    """The rendered HPA, each of its metrics alone, and CPU utilisation, all with its behavior."""
    by_name = {m.name: m for m in hpa.metrics}
    return {
        "queue time + pending (deployed)": hpa,
        "queue time only": replace(hpa, metrics=(by_name[QUEUE_METRIC],)),
        "pending only": replace(hpa, metrics=(by_name[PENDING_METRIC],)),
        f"CPU {cpu_target_percent:g}%": replace(
            hpa,
            metrics=(MetricTarget(RESOURCE_METRIC, CPU_METRIC, UTILIZATION, cpu_target_percent),),
        ),
    }


class Simulation:
    def __init__(
        self,
        spec: HPASpec,
        service: ServiceTimes,
        trace: Trace,
        startup_s: float,
        objective_s: float,
        seed: int = 1,
        signal: str = "",
        policy: QueuePolicy = QueuePolicy(),
    ) -> None:
        self.policy = policy
        self.rejected = 0
        self.spec = spec
        self.service = service
        self.trace = trace
        self.startup_s = startup_s
        self.objective_s = objective_s
        self.rng = random.Random(seed)
        self.signal = signal
        self.controller = HorizontalPodAutoscaler(spec)
        self.pods: list[SimPod] = []
        self.scrapes: dict[str, list[Scrape]] = {}
        self.next_pod = 0
        self.events: list[tuple[float, int, str, object]] = []
        self.sequence = 0
        self.peak_rate = max(trace.rate(t) for t in np.linspace(0, trace.duration_s, 2001))

    def _push(self, time_s: float, kind: str, payload: object = None) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (time_s, self.sequence, kind, payload))

    def _add_pod(self, now_s: float, ready_at_s: float) -> None:
        pod = SimPod(f"pod-{self.next_pod}", ready_at_s)
        self.next_pod += 1
        self.pods.append(pod)
        self.scrapes[pod.name] = []

    def _start_batch(self, pod: SimPod, now_s: float) -> None:
        if self.policy.timeout_s:
            while pod.queue and now_s - pod.queue[0] > self.policy.timeout_s:
                pod.queue.popleft()
                self.rejected += 1
        if pod.in_service or not pod.queue:
            return
        size = min(len(pod.queue), self.service.max_batch)
        arrivals = [pod.queue.popleft() for _ in range(size)]
        duration = self.service.for_batch(size)
        pod.in_service = size
        pod.busy_until_s = now_s + duration
        pod.busy_total_s += duration
        pod.queue_duration_total_s += sum(now_s - a for a in arrivals)
        self._push(now_s + duration, "done", (pod, arrivals))

    def _route(self, now_s: float) -> SimPod:
        ready = [p for p in self.pods if p.ready(now_s)]
        # Before any pod is ready (only at the very start) requests wait at the first pod.
        candidates = ready or [p for p in self.pods if not p.removing]
        return min(candidates, key=lambda p: (p.outstanding(), p.name))

    def _window_value(self, pod: SimPod, now_s: float, metric: str) -> float | None:
        samples = self.scrapes[pod.name]
        window = {QUEUE_METRIC: QUEUE_WINDOW_S, PENDING_METRIC: PENDING_WINDOW_S}.get(
            metric, CPU_WINDOW_S
        )
        times = [s.time_s for s in samples]
        first = bisect.bisect_left(times, now_s - window)
        recent = samples[first:]
        if metric == PENDING_METRIC:
            return sum(s.pending for s in recent) / len(recent) if recent else None
        if len(recent) < 2:
            return None
        old, new = recent[0], recent[-1]
        if metric == QUEUE_METRIC:
            served = new.success_total - old.success_total
            waited = new.queue_duration_total_s - old.queue_duration_total_s
            return 0.0 if served == 0 else waited / served * 1e6
        # One Triton pod keeps one CPU request's worth of cores busy while it serves a batch.
        return 100.0 * (new.busy_total_s - old.busy_total_s) / (new.time_s - old.time_s)

    def _observe(self, now_s: float) -> tuple[list[Pod], dict[str, Observation]]:
        pods = [Pod(p.name, ready=p.ready(now_s)) for p in self.pods if not p.removing]
        observations: dict[str, Observation] = {}
        for metric in self.spec.metrics:
            values = {}
            for pod in self.pods:
                if pod.removing or not pod.ready(now_s):
                    continue
                value = self._window_value(pod, now_s, metric.name)
                if value is not None:
                    values[pod.name] = value
            observations[metric.name] = values
        return pods, observations

    def _resize(self, now_s: float, desired: int) -> None:
        active = [p for p in self.pods if not p.removing]
        for _ in range(desired - len(active)):
            self._add_pod(now_s, now_s + self.startup_s)
        if desired < len(active):
            # The ReplicaSet removes pods that are not ready first, then the newest.
            victims = sorted(active, key=lambda p: (p.ready(now_s), -p.ready_at_s))
            for pod in victims[: len(active) - desired]:
                pod.removing = True
                # Its queued requests move to the others: the preStop drain stops new work
                # reaching it while it finishes what it has.
                requeue = list(pod.queue)
                pod.queue.clear()
                for arrival in requeue:
                    target = self._route(now_s)
                    target.queue.append(arrival)
                    self._start_batch(target, now_s)

    def run(self) -> SimulationResult:
        for _ in range(self.spec.min_replicas):
            self._add_pod(0.0, 0.0)
        self._push(self._next_arrival(0.0), "arrival")
        for k in range(1, int(self.trace.duration_s / SCRAPE_INTERVAL_S) + 1):
            self._push(k * SCRAPE_INTERVAL_S, "scrape")
        for k in range(1, int(self.trace.duration_s / SYNC_PERIOD_S) + 1):
            self._push(k * SYNC_PERIOD_S + 0.5, "sync")  # just after the scrape it reads
        latencies: list[float] = []
        completions: list[float] = []
        timeline: list[tuple[float, int, int, float]] = []
        replica_seconds = 0.0
        last_t = 0.0
        while self.events:
            now, _, kind, payload = heapq.heappop(self.events)
            running = sum(1 for p in self.pods if not p.removing or p.outstanding())
            replica_seconds += running * (now - last_t)
            last_t = now
            if kind == "arrival":
                if now >= self.trace.duration_s:
                    continue
                pod = self._route(now)
                if self.policy.max_queue_size and len(pod.queue) >= self.policy.max_queue_size:
                    self.rejected += 1
                else:
                    pod.queue.append(now)
                    self._start_batch(pod, now)
                self._push(self._next_arrival(now), "arrival")
            elif kind == "done":
                pod, arrivals = payload  # type: ignore[misc]
                pod.in_service = 0
                pod.success_total += len(arrivals)
                latencies.extend(now - a for a in arrivals)
                completions.extend([now] * len(arrivals))
                self._start_batch(pod, now)
                if pod.removing and not pod.outstanding():
                    self.pods.remove(pod)
            elif kind == "scrape":
                for pod in self.pods:
                    self.scrapes[pod.name].append(
                        Scrape(
                            now,
                            pod.queue_duration_total_s,
                            pod.success_total,
                            len(pod.queue),
                            pod.busy_total_s - max(0.0, pod.busy_until_s - now),
                        )
                    )
            elif kind == "sync":
                pods, observations = self._observe(now)
                current = len(pods)
                decision = self.controller.reconcile(now, current, pods, observations)
                if decision.desired_replicas != current:
                    self._resize(now, decision.desired_replicas)
                timeline.append(
                    (
                        now,
                        sum(1 for p in self.pods if not p.removing),
                        sum(1 for p in self.pods if p.ready(now)),
                        self.trace.rate(now),
                    )
                )
        return SimulationResult(
            signal=self.signal,
            trace=self.trace.name,
            latencies_s=latencies,
            completion_times_s=completions,
            replica_seconds=replica_seconds,
            timeline=timeline,
            objective_s=self.objective_s,
            rejected=self.rejected,
        )

    def _next_arrival(self, now_s: float) -> float:
        # Thinning of a Poisson process whose rate changes with time.
        peak = self.peak_rate
        t = now_s
        while True:
            t += self.rng.expovariate(max(peak, 1e-9))
            if t >= self.trace.duration_s or self.rng.random() * peak <= self.trace.rate(t):
                return t


def compare(
    hpa: HPASpec,
    service: ServiceTimes,
    traces: Sequence[Trace],
    startup_s: float,
    objective_s: float,
    seed: int = 1,
    policy: QueuePolicy = QueuePolicy(),
) -> list[SimulationResult]:
    results = []
    for trace in traces:
        for name, spec in signal_specs(hpa).items():
            simulation = Simulation(
                spec, service, trace, startup_s, objective_s, seed, name, policy
            )
            results.append(simulation.run())
    return results


def table(results: Sequence[SimulationResult]) -> list[dict[str, object]]:
    return [
        {
            "trace": r.trace,
            "signal": r.signal,
            "p95_ms": round(r.percentile_ms(95), 1),
            "p99_ms": round(r.percentile_ms(99), 1),
            "seconds_over_objective": round(r.seconds_over_objective()),
            "replica_seconds": round(r.replica_seconds),
            "served": len(r.latencies_s),
            "refused_percent": round(100 * r.rejected / max(1, r.rejected + len(r.latencies_s)), 2),
        }
        for r in results
    ]


def markdown_table(rows: Sequence[dict[str, object]]) -> str:
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines)
