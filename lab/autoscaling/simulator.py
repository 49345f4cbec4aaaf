"""A capacity SIMULATION: many replicas, the HPA loop, traffic traces, scaling signals compared.

Nothing here is measured on a cluster. Each simulated pod is one batching server whose time per
batch of `b` requests comes from measurements of the local Triton (`ServiceTimes`); a new pod
serves after a start-up time (the measured model load time plus a node/image delay given by
the user). Requests arrive as a Poisson process at the rate of a trace and go to the ready pod
with the fewest requests outstanding (what an L7 gateway does). The monitoring pipeline is
modelled on the deployed one: scrapes every 15 s, the recording rules' windows and caps (read
from the rendered rules: `adapter_metric_windows`, `adapter_metric_caps`), CPU utilisation
averaged over a minute as metrics-server reports it, and the HPA algorithm
(lab.autoscaling.hpa) with the rendered object's settings every 15 s.
Every policy is measured against an oracle autoscaler (`OracleAutoscaler`) on the same trace,
planning with the same headroom as the shipped policy, over several seeds (medians, with the
range, and a verdict that says where the seeds disagree).
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from inference_tools.autoscaling.calibrate import QUEUE_HEADROOM, REQUEST_RATE_HEADROOM
from inference_tools.autoscaling.hpa_spec import (
    PERCENT_POLICY,
    PODS_POLICY,
    RESOURCE_METRIC,
    UTILIZATION,
    Behavior,
    HPASpec,
    MetricTarget,
    ScalingPolicy,
    ScalingRules,
)
from inference_tools.autoscaling.rendered_settings import SignalCap

from lab.autoscaling.hpa import HorizontalPodAutoscaler, Observation, Pod

SCRAPE_INTERVAL_S = 15.0
SYNC_PERIOD_S = 15.0
# metrics-server's resolution: CPU utilisation is no rule of ours, so no manifest says it.
CPU_WINDOW_S = 60.0
QUEUE_METRIC = "triton_queue_time_per_request_us"
PENDING_METRIC = "triton_pending_requests"
REQUEST_RATE_METRIC = "triton_requests_per_second"
CPU_METRIC = "cpu"
ORACLE_TICK_S = 1.0
ORACLE = "oracle"
# Seconds over the objective are counted in buckets of the simulation's finest decision step
# (the oracle's tick), not coarser than the bounds they are held to.
RESOLUTION_S = ORACLE_TICK_S
# The shipped policy plans at this share of the rate at the objective (its request-rate
# target): the oracle it is held against plans with the same headroom, not with none.
SHIPPED_HEADROOM = REQUEST_RATE_HEADROOM
DEFAULT_SEEDS = (1, 2, 3)


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


@dataclass(frozen=True)
class OracleAutoscaler:
    """The best a reactive autoscaler could do: the yardstick for every policy.

    At every instant it knows the true demand (no forecast, no scrape, no rule window, no sync
    period) and asks for exactly the replicas that demand needs at `headroom` times the per-pod
    capacity, within the same bounds; its pods start as slowly as everyone's.
    """

    min_replicas: int
    max_replicas: int
    capacity_per_s: float
    headroom: float = 1.0

    def desired_replicas(self, demand_per_s: float) -> int:
        # A hair below an integer multiple is still that many pods, not one more.
        needed = math.ceil(demand_per_s / (self.capacity_per_s * self.headroom) - 1e-9)
        return min(self.max_replicas, max(self.min_replicas, needed))


@dataclass(frozen=True)
class PodCalibration:
    """What `make calibrate` measures on a real pod, measured on a simulated one: the load at
    which p95 latency reaches the objective, and the queue signals at that load."""

    capacity_per_s: float
    queue_time_per_request_us: float
    pending_requests: float


def calibrate_pod(
    service: ServiceTimes,
    objective_s: float,
    policy: QueuePolicy = QueuePolicy(),
    seed: int = 1,
    duration_s: float = 600.0,
) -> PodCalibration:
    """A steady Poisson load on one simulated pod, bisected to where p95 latency reaches the
    objective. Its capacity is what the oracle plans with; all three values calibrate the
    policy's targets on the simulated pod (`with_simulated_calibration`)."""
    single = HPASpec(min_replicas=1, max_replicas=1, metrics=(), behavior=None)
    top = service.capacity_per_s()

    def steady(rate: float) -> tuple[Simulation, SimulationResult]:
        trace = Trace("steady", duration_s, lambda t: rate)
        simulation = Simulation(
            single, service, trace, 0.0, objective_s, seed, policy=policy, oracle_capacity_per_s=top
        )
        return simulation, simulation.run()

    def meets_objective(rate: float) -> bool:
        _, result = steady(rate)
        return result.rejected == 0 and result.percentile_ms(95) <= objective_s * 1000

    low, high = 0.0, top
    for _ in range(12):
        middle = (low + high) / 2
        low, high = (middle, high) if meets_objective(middle) else (low, middle)
    simulation, _ = steady(low)
    (pod,) = simulation.pods
    scrapes = simulation.scrapes[pod.name]
    return PodCalibration(
        capacity_per_s=low,
        queue_time_per_request_us=pod.queue_duration_total_s / max(1, pod.success_total) * 1e6,
        pending_requests=sum(s.pending for s in scrapes) / max(1, len(scrapes)),
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
    failure_total: int = 0
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
    failure_total: int = 0


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
    seed: int = 1

    def percentile_ms(self, q: float) -> float:
        return float(np.percentile(self.latencies_s, q) * 1000) if self.latencies_s else 0.0

    def seconds_over_objective(self, bucket_s: float = RESOLUTION_S) -> float:
        """Seconds in buckets whose p95 latency (requests finished in them) tops the objective:
        where more than 5% of the bucket's requests took longer than the objective."""
        if not self.latencies_s:
            return 0.0
        buckets = (np.asarray(self.completion_times_s) // bucket_s).astype(np.int64)
        slow = np.asarray(self.latencies_s) > self.objective_s
        finished = np.bincount(buckets)
        over = np.bincount(buckets, weights=slow.astype(np.float64), minlength=len(finished))
        return bucket_s * int(np.count_nonzero(over > 0.05 * finished))


# The policy shipped before the request-rate signal: queue time and pending requests alone,
# scale-up doubling per 30 s, scale-down after 5 minutes by 10% or one pod per minute. Kept as
# a row of the table so that every change is measured against it.
PREVIOUS_BEHAVIOR = Behavior(
    scale_up=ScalingRules(
        0, (ScalingPolicy(PERCENT_POLICY, 100, 30), ScalingPolicy(PODS_POLICY, 4, 30))
    ),
    scale_down=ScalingRules(
        300, (ScalingPolicy(PERCENT_POLICY, 10, 60), ScalingPolicy(PODS_POLICY, 1, 60))
    ),
)
SHIPPED = "shipped policy"
PREVIOUS = "queue time + pending (previous policy)"


def with_simulated_calibration(hpa: HPASpec, calibration: PodCalibration) -> HPASpec:
    """The HPA with its targets calibrated on the simulated pod.

    The rendered targets were measured on real hardware, in Triton's units (requests of every
    model that queues); the simulated pod has its own capacity and queues. Each target keeps
    the rendered policy's meaning: the value at the objective times `make calibrate`'s
    headroom for it.
    """
    at_objective = {
        REQUEST_RATE_METRIC: calibration.capacity_per_s * REQUEST_RATE_HEADROOM,
        QUEUE_METRIC: calibration.queue_time_per_request_us * QUEUE_HEADROOM,
        PENDING_METRIC: calibration.pending_requests * QUEUE_HEADROOM,
    }
    metrics = tuple(
        replace(m, target=at_objective[m.name]) if m.name in at_objective else m
        for m in hpa.metrics
    )
    return replace(hpa, metrics=metrics)


def simulated_caps(caps: Mapping[str, SignalCap], calibration: PodCalibration) -> dict[str, float]:
    """The rendered caps' factors applied to the simulated pod's values at the objective."""
    at_objective = {
        QUEUE_METRIC: calibration.queue_time_per_request_us,
        PENDING_METRIC: calibration.pending_requests,
    }
    return {name: cap.factor * at_objective[name] for name, cap in caps.items()}


def signal_specs(
    hpa: HPASpec, calibration: PodCalibration, cpu_target_percent: float = 80.0
) -> dict[str, HPASpec]:
    """Every autoscaler the table compares (the oracle is added by `compare`).

    The shipped policy as rendered, its request-rate signal alone, the previous policy (queue
    time + pending with its slow scale-down), and a CPU-based HPA as most clusters run it
    (utilisation target, the API server's default behavior).
    """
    shipped = with_simulated_calibration(hpa, calibration)
    by_name = {m.name: m for m in shipped.metrics}
    specs = {SHIPPED: shipped}
    if REQUEST_RATE_METRIC in by_name:
        specs["request rate only"] = replace(shipped, metrics=(by_name[REQUEST_RATE_METRIC],))
    specs[PREVIOUS] = replace(
        shipped,
        metrics=(by_name[QUEUE_METRIC], by_name[PENDING_METRIC]),
        behavior=PREVIOUS_BEHAVIOR,
    )
    specs[f"CPU {cpu_target_percent:g}%"] = replace(
        shipped,
        metrics=(MetricTarget(RESOURCE_METRIC, CPU_METRIC, UTILIZATION, cpu_target_percent),),
        behavior=None,
    )
    return specs


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
        oracle_capacity_per_s: float | None = None,
        caps: Mapping[str, float] | None = None,
        windows_s: Mapping[str, float] | None = None,
        oracle_headroom: float = 1.0,
    ) -> None:
        """`oracle_capacity_per_s` replaces the HPA by the oracle (see `OracleAutoscaler`),
        planning at `oracle_headroom` of it; `caps` bounds a metric's value as the recording
        rules cap it (`signal_caps`); `windows_s` is the range each metric the HPA reads is computed
        over, as the recording rules compute it (`adapter_metric_windows`)."""
        self.policy = policy
        self.caps = dict(caps or {})
        self.windows_s = dict(windows_s or {})
        self.oracle = (
            None
            if oracle_capacity_per_s is None
            else OracleAutoscaler(
                spec.min_replicas, spec.max_replicas, oracle_capacity_per_s, oracle_headroom
            )
        )
        self.seed = seed
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
                pod.failure_total += 1
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
        value = self._uncapped_window_value(pod, now_s, metric)
        if value is None or metric not in self.caps:
            return value
        return min(value, self.caps[metric])

    def _uncapped_window_value(self, pod: SimPod, now_s: float, metric: str) -> float | None:
        samples = self.scrapes[pod.name]
        window = CPU_WINDOW_S if metric == CPU_METRIC else self.windows_s.get(metric)
        if window is None:
            raise ValueError(f"no window for {metric}: pass the rendered rules' (windows_s)")
        times = [s.time_s for s in samples]
        first = bisect.bisect_left(times, now_s - window)
        recent = samples[first:]
        if metric == PENDING_METRIC:
            return sum(s.pending for s in recent) / len(recent) if recent else None
        if len(recent) < 2:
            return None
        old, new = recent[0], recent[-1]
        if metric == REQUEST_RATE_METRIC:
            # Requests that reached the pod: served, or refused by its queue policy.
            arrived = (new.success_total + new.failure_total) - (
                old.success_total + old.failure_total
            )
            return arrived / (new.time_s - old.time_s)
        if metric == QUEUE_METRIC:
            served = new.success_total - old.success_total
            waited = new.queue_duration_total_s - old.queue_duration_total_s
            return 0.0 if served == 0 else waited / served * 1e6
        # One Triton pod keeps one CPU request's worth of cores busy while it serves a batch.
        return 100.0 * (new.busy_total_s - old.busy_total_s) / (new.time_s - old.time_s)

    def _observe(self, now_s: float) -> tuple[list[Pod], dict[str, Observation]]:
        # A starting pod counts as Pending for its whole start (node, image, model load); a
        # real one is Running but not Ready during the model load, without metrics: missing,
        # which the controller counts like Pending on a rise but at the target on a fall.
        pods = [
            Pod(p.name, ready=p.ready(now_s), pending=not p.ready(now_s))
            for p in self.pods
            if not p.removing
        ]
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
        if self.oracle is None:
            for k in range(1, int(self.trace.duration_s / SYNC_PERIOD_S) + 1):
                self._push(k * SYNC_PERIOD_S + 0.5, "sync")  # just after the scrape it reads
        else:
            for k in range(int(self.trace.duration_s / ORACLE_TICK_S) + 1):
                self._push(k * ORACLE_TICK_S, "oracle")
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
                    pod.failure_total += 1
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
                            pod.failure_total,
                        )
                    )
            elif kind in ("sync", "oracle"):
                if kind == "sync":
                    pods, observations = self._observe(now)
                    current = len(pods)
                    desired = self.controller.reconcile(
                        now, current, pods, observations
                    ).desired_replicas
                else:
                    assert self.oracle is not None
                    current = sum(1 for p in self.pods if not p.removing)
                    desired = self.oracle.desired_replicas(self.trace.rate(now))
                if desired != current:
                    self._resize(now, desired)
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
            seed=self.seed,
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
    calibration: PodCalibration | None = None,
    caps: Mapping[str, SignalCap] | None = None,
    windows_s: Mapping[str, float] | None = None,
    seeds: Sequence[int] | None = None,
    oracle_headroom: float = SHIPPED_HEADROOM,
) -> list[SimulationResult]:
    """Every trace under the oracle first, then under each autoscaler of `signal_specs`, once
    per seed (`seeds`; just `seed` where not given): the same arrivals for all on one seed.

    `caps` (from the rendered rules, `adapter_metric_caps`) apply to every policy but the
    previous one, which read the queue signals uncapped; `windows_s` (`adapter_metric_windows`)
    to all. Every policy's targets are calibrated
    on the simulated pod (`calibration`, measured when not given); the oracle plans at
    `oracle_headroom` of the calibrated capacity, as the shipped policy does.
    """
    if calibration is None:
        calibration = calibrate_pod(service, objective_s, policy, seed)
    capacity = calibration.capacity_per_s
    pod_caps = simulated_caps(caps or {}, calibration)
    results = []
    for trace in traces:
        for run_seed in seeds or (seed,):
            oracle = Simulation(
                hpa,
                service,
                trace,
                startup_s,
                objective_s,
                run_seed,
                ORACLE,
                policy,
                capacity,
                oracle_headroom=oracle_headroom,
            )
            results.append(oracle.run())
            for name, spec in signal_specs(hpa, calibration).items():
                simulation = Simulation(
                    spec,
                    service,
                    trace,
                    startup_s,
                    objective_s,
                    run_seed,
                    name,
                    policy,
                    caps=None if name == PREVIOUS else pod_caps,
                    windows_s=windows_s,
                )
                results.append(simulation.run())
    return results


def oracle_frontier(
    hpa: HPASpec,
    service: ServiceTimes,
    trace: Trace,
    startup_s: float,
    objective_s: float,
    capacity_per_s: float,
    headrooms: Sequence[float] = (0.6, 0.7, 0.8, 0.9, 1.0),
    seeds: Sequence[int] = DEFAULT_SEEDS,
    policy: QueuePolicy = QueuePolicy(),
) -> list[dict[str, float]]:
    """The oracle's cost against its latency over a sweep of headrooms (medians over seeds):
    replica-seconds against seconds over the objective. A policy below this curve on both axes
    at once would be doing better than knowing the demand: a flaw in the simulation."""
    points = []
    for headroom in headrooms:
        runs = [
            Simulation(
                hpa,
                service,
                trace,
                startup_s,
                objective_s,
                seed,
                ORACLE,
                policy,
                capacity_per_s,
                oracle_headroom=headroom,
            ).run()
            for seed in seeds
        ]
        points.append(
            {
                "headroom": headroom,
                "replica_seconds": round(float(np.median([r.replica_seconds for r in runs]))),
                "seconds_over_objective": round(
                    float(np.median([r.seconds_over_objective() for r in runs])), 1
                ),
            }
        )
    return points


def beats(result: SimulationResult, oracle: SimulationResult) -> bool:
    """Fewer replica-seconds and fewer seconds over the objective than the oracle, at once."""
    return (
        result.replica_seconds < oracle.replica_seconds
        and result.seconds_over_objective() < oracle.seconds_over_objective()
    )


@dataclass(frozen=True)
class OracleTargets:
    """How close to the oracle a policy must come on every trace."""

    replica_seconds_ratio: float = 1.15
    extra_seconds_over_objective: float = 15.0
    extra_refused_points: float = 1.0


def refused_percent(result: SimulationResult) -> float:
    return 100 * result.rejected / max(1, result.rejected + len(result.latencies_s))


MET, NOT_MET, INCONCLUSIVE = "met", "not met", "inconclusive"


def _within(r: SimulationResult, oracle: SimulationResult, targets: OracleTargets) -> bool:
    return (
        r.replica_seconds / oracle.replica_seconds <= targets.replica_seconds_ratio
        and r.seconds_over_objective() - oracle.seconds_over_objective()
        <= targets.extra_seconds_over_objective
        and refused_percent(r) - refused_percent(oracle) <= targets.extra_refused_points
    )


def _range_text(values: Sequence[float], digits: int) -> str:
    return f"{min(values):.{digits}f} to {max(values):.{digits}f}"


def verdict(within: Sequence[bool]) -> str:
    """Met where every seed is within the targets, not met where none is; else inconclusive,
    saying how many: one lucky seed proves nothing either way."""
    if all(within):
        return MET
    if not any(within):
        return NOT_MET
    return f"{INCONCLUSIVE}: {sum(within)} of {len(within)} seeds within"


def table(
    results: Sequence[SimulationResult], targets: OracleTargets = OracleTargets()
) -> list[dict[str, object]]:
    """One row per trace and autoscaler: medians over the seeds, each seed's run against the
    oracle's run of its trace and seed, the range of the two comparisons, and the verdict."""
    oracles = {(r.trace, r.seed): r for r in results if r.signal == ORACLE}
    groups: dict[tuple[str, str], list[SimulationResult]] = {}
    for r in results:
        groups.setdefault((r.trace, r.signal), []).append(r)
    rows = []
    for (trace, signal), runs in groups.items():
        pairs = [(r, oracles[(r.trace, r.seed)]) for r in runs]
        ratios = [r.replica_seconds / o.replica_seconds for r, o in pairs]
        extra_over = [r.seconds_over_objective() - o.seconds_over_objective() for r, o in pairs]
        extra_refused = [refused_percent(r) - refused_percent(o) for r, o in pairs]

        def median(values: Sequence[float]) -> float:
            return float(np.median(values))

        rows.append(
            {
                "trace": trace,
                "signal": signal,
                "seeds": len(runs),
                "p95_ms": round(median([r.percentile_ms(95) for r in runs]), 1),
                "p99_ms": round(median([r.percentile_ms(99) for r in runs]), 1),
                "seconds_over_objective": round(median([r.seconds_over_objective() for r in runs])),
                "replica_seconds": round(median([r.replica_seconds for r in runs])),
                "refused_percent": round(median([refused_percent(r) for r in runs]), 2),
                "replica_seconds_vs_oracle": round(median(ratios), 2),
                "replica_seconds_vs_oracle_range": _range_text(ratios, 2),
                "over_objective_s_minus_oracle": round(median(extra_over)),
                "over_objective_s_minus_oracle_range": _range_text(extra_over, 0),
                "refused_points_minus_oracle": round(median(extra_refused), 2),
                "verdict": verdict([_within(r, o, targets) for r, o in pairs]),
            }
        )
    return rows


def markdown_table(rows: Sequence[dict[str, object]]) -> str:
    headers = list(rows[0])
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(row[h]) for h in headers) + " |" for row in rows]
    return "\n".join(lines)
