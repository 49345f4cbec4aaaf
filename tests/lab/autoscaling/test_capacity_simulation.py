"""The capacity simulation's accounting and the behaviour of the signals it compares.

Synthetic service times keep these fast; `inference-tools autoscaling simulate` feeds it measured
ones.
"""

from __future__ import annotations

import dataclasses
import functools

import pytest
from inference_tools.autoscaling import rendered_settings
from inference_tools.autoscaling.hpa_spec import HPASpec
from inference_tools.manifests.render import Render
from lab.autoscaling import simulator as sim
from lab.commands.autoscaling.simulate import LABEL, queue_policy

from tests.checkout import KUSTOMIZE_DIR

SERVICE = sim.ServiceTimes((1, 2, 4, 8, 16), (0.010, 0.014, 0.022, 0.040, 0.090))


@functools.cache
def rendered() -> Render:
    return rendered_settings.render(KUSTOMIZE_DIR / "overlays" / "cpu-hpa")


def windows() -> dict[str, float]:
    """The ranges the rendered recording rules compute the HPA's metrics over."""
    return rendered_settings.adapter_metric_windows(rendered())


@pytest.fixture(scope="module")
def hpa() -> HPASpec:
    return rendered_settings.hpa_spec(rendered())


def first_scale_out(result: sim.SimulationResult, minimum: int) -> float | None:
    return next((t for t, running, _, _ in result.timeline if running > minimum), None)


def test_most_efficient_batch_and_capacity() -> None:
    assert SERVICE.max_batch == 8  # 8 / 40 ms = 200/s beats 16 / 90 ms = 178/s
    assert SERVICE.capacity_per_s() == pytest.approx(200.0)
    assert SERVICE.for_batch(3) == pytest.approx(0.018)


def test_light_steady_load_stays_at_the_minimum_and_costs_minimum_replica_seconds(
    hpa: HPASpec,
) -> None:
    trace = sim.Trace("flat", 300.0, lambda t: 20.0)
    result = sim.Simulation(
        hpa, SERVICE, trace, startup_s=60, objective_s=0.2, windows_s=windows()
    ).run()
    assert {running for _, running, _, _ in result.timeline} == {hpa.min_replicas}
    assert result.replica_seconds == pytest.approx(hpa.min_replicas * 300.0, rel=0.01)
    # Light load: requests mostly run alone, so latency is about one batch-of-1 service time.
    assert result.percentile_ms(50) == pytest.approx(10.0, rel=0.3)
    assert result.seconds_over_objective() == 0
    assert result.rejected == 0


def compare_all(
    hpa: HPASpec, traces: list[sim.Trace], seeds: tuple[int, ...] = (1,)
) -> list[sim.SimulationResult]:
    return sim.compare(
        hpa,
        SERVICE,
        traces,
        startup_s=60,
        objective_s=0.2,
        calibration=POD,
        caps={
            sim.QUEUE_METRIC: rendered_settings.SignalCap(2, 0),
            sim.PENDING_METRIC: rendered_settings.SignalCap(2, 0),
        },
        windows_s=windows(),
        seeds=seeds,
    )


def compare(hpa: HPASpec, traces: list[sim.Trace]) -> dict[str, sim.SimulationResult]:
    return {r.signal: r for r in compare_all(hpa, traces)}


# About what calibrate_pod finds for SERVICE at a 200 ms objective (see its test).
POD = sim.PodCalibration(capacity_per_s=190.0, queue_time_per_request_us=40000, pending_requests=8)
POD_CAPACITY = POD.capacity_per_s


def test_pod_calibration_is_where_p95_reaches_the_objective() -> None:
    calibration = sim.calibrate_pod(SERVICE, 0.2, duration_s=120.0)
    capacity = calibration.capacity_per_s
    assert 0.8 * SERVICE.capacity_per_s() < capacity < SERVICE.capacity_per_s()
    # Near saturation requests queue: tens of milliseconds, several waiting at a time.
    assert calibration.queue_time_per_request_us > 10 * 1000
    assert calibration.pending_requests > 1

    def p95_s(rate: float) -> float:
        trace = sim.Trace("steady", 120.0, lambda t: rate)
        run = sim.Simulation(
            HPASpec(1, 1, (), None), SERVICE, trace, 0, 0.2, oracle_capacity_per_s=1e9
        ).run()
        return run.percentile_ms(95) / 1000

    assert p95_s(capacity) <= 0.2 < p95_s(min(SERVICE.capacity_per_s(), capacity * 1.05))


def test_oracle_asks_for_exactly_the_pods_the_demand_needs() -> None:
    oracle = sim.OracleAutoscaler(min_replicas=2, max_replicas=10, capacity_per_s=100.0)
    assert oracle.desired_replicas(50.0) == 2  # never below the minimum
    assert oracle.desired_replicas(300.0) == 3  # exactly at capacity: no extra pod
    assert oracle.desired_replicas(301.0) == 4
    assert oracle.desired_replicas(5000.0) == 10  # never above the maximum


def test_oracle_plans_with_the_shipped_policys_headroom() -> None:
    assert sim.SHIPPED_HEADROOM == 0.9  # the request-rate target: 0.9 of the rate at the objective
    oracle = sim.OracleAutoscaler(2, 10, capacity_per_s=100.0, headroom=sim.SHIPPED_HEADROOM)
    assert oracle.desired_replicas(270.0) == 3  # 3 pods at 90 req/s each
    assert oracle.desired_replicas(280.0) == 4  # where the unhedged oracle would keep 3


def test_oracle_scales_at_the_step_and_its_pods_start_as_slowly(hpa: HPASpec) -> None:
    trace = sim.step_trace(100.0, 3.5 * POD_CAPACITY, at_s=60, duration_s=240)
    result = sim.Simulation(
        hpa, SERVICE, trace, 45, 0.2, signal=sim.ORACLE, oracle_capacity_per_s=POD_CAPACITY
    ).run()
    running = {t: n for t, n, _, _ in result.timeline}
    ready = {t: r for t, _, r, _ in result.timeline}
    assert running[59.0] == hpa.min_replicas and running[60.0] == 4
    assert ready[104.0] == hpa.min_replicas and ready[105.0] == 4


def test_every_row_is_measured_against_the_oracle_of_its_trace(hpa: HPASpec) -> None:
    capacity = SERVICE.capacity_per_s() * hpa.min_replicas
    trace = sim.step_trace(0.35 * capacity, 1.5 * capacity, at_s=60, duration_s=300)
    rows = {r["signal"]: r for r in sim.table(list(compare(hpa, [trace]).values()))}
    oracle = rows[sim.ORACLE]
    assert oracle["replica_seconds_vs_oracle"] == 1.0
    assert oracle["over_objective_s_minus_oracle"] == 0 and oracle["verdict"] == sim.MET
    for row in rows.values():
        ratio = row["replica_seconds"] / oracle["replica_seconds"]
        assert row["replica_seconds_vs_oracle"] == pytest.approx(ratio, abs=0.01)
        assert row["over_objective_s_minus_oracle"] == (
            row["seconds_over_objective"] - oracle["seconds_over_objective"]
        )
    # The previous policy's queue signals multiply the fleet; the shipped one stays near the
    # oracle on the same step.
    previous = rows[sim.PREVIOUS]["replica_seconds_vs_oracle"]
    assert rows[sim.SHIPPED]["replica_seconds_vs_oracle"] < previous


def test_queue_signal_decides_before_cpu_on_a_spike(hpa: HPASpec) -> None:
    capacity = SERVICE.capacity_per_s() * hpa.min_replicas
    trace = sim.spike_trace(0.3 * capacity, 2.5 * capacity, at_s=60, length_s=120, duration_s=420)
    specs = sim.signal_specs(hpa, POD)
    deployed, cpu = (
        sim.Simulation(specs[name], SERVICE, trace, 60, 0.2, signal=name, windows_s=windows()).run()
        for name in (sim.PREVIOUS, "CPU 80%")
    )
    assert first_scale_out(deployed, hpa.min_replicas) < first_scale_out(cpu, hpa.min_replicas)
    # CPU utilisation saturates at 100%, so it can ask for at most 100/80 of the pods per sync.
    peak_deployed = max(running for _, running, _, _ in deployed.timeline)
    peak_cpu = max(running for _, running, _, _ in cpu.timeline)
    assert peak_deployed > peak_cpu
    assert deployed.seconds_over_objective() < cpu.seconds_over_objective()
    assert deployed.replica_seconds > cpu.replica_seconds  # what the faster response costs


def test_queue_policy_refuses_instead_of_queueing_forever(hpa: HPASpec) -> None:
    trace = sim.Trace("overload", 120.0, lambda t: 5 * SERVICE.capacity_per_s())
    spec = dataclasses.replace(hpa, max_replicas=hpa.min_replicas)
    bounded = sim.Simulation(
        spec,
        SERVICE,
        trace,
        60,
        0.2,
        policy=sim.QueuePolicy(max_queue_size=16, timeout_s=0.5),
        windows_s=windows(),
    ).run()
    assert bounded.rejected > 0
    assert max(bounded.latencies_s) < 0.5 + SERVICE.for_batch(SERVICE.max_batch) + 1e-6


def test_queue_policy_comes_from_the_model_configuration() -> None:
    policy = queue_policy()
    assert policy.max_queue_size > 0 and policy.timeout_s > 0


def test_every_report_says_it_is_a_simulation(hpa: HPASpec) -> None:
    trace = sim.Trace("flat", 60.0, lambda t: 10.0)
    rows = sim.table(list(compare(hpa, [trace]).values()))
    assert "SIMULATION" in LABEL
    assert {row["signal"] for row in rows} == {sim.ORACLE, *sim.signal_specs(hpa, POD)}


def test_targets_and_caps_are_calibrated_on_the_simulated_pod(hpa: HPASpec) -> None:
    spec = sim.with_simulated_calibration(hpa, POD)
    targets = {m.name: m.target for m in spec.metrics}
    assert targets == {
        sim.QUEUE_METRIC: pytest.approx(40000),
        sim.PENDING_METRIC: pytest.approx(8),
        sim.REQUEST_RATE_METRIC: pytest.approx(0.9 * 190.0),
    }
    caps = {
        sim.QUEUE_METRIC: rendered_settings.SignalCap(2, 37000),
        sim.PENDING_METRIC: rendered_settings.SignalCap(2, 8),
    }
    assert sim.simulated_caps(caps, POD) == {sim.QUEUE_METRIC: 80000, sim.PENDING_METRIC: 16}


def test_request_rate_counts_refused_requests_as_demand(hpa: HPASpec) -> None:
    spec = dataclasses.replace(hpa, min_replicas=1, max_replicas=1)
    demand = 3 * SERVICE.capacity_per_s()
    trace = sim.Trace("overload", 120.0, lambda t: demand)
    simulation = sim.Simulation(
        spec,
        SERVICE,
        trace,
        0,
        0.2,
        policy=sim.QueuePolicy(max_queue_size=16, timeout_s=0.5),
        windows_s=windows(),
    )
    simulation.run()
    pod = simulation.pods[0]
    rate = simulation._window_value(pod, 120.0, sim.REQUEST_RATE_METRIC)
    assert rate == pytest.approx(demand, rel=0.1)


def test_caps_bound_what_the_autoscaler_reads(hpa: HPASpec) -> None:
    spec = dataclasses.replace(hpa, min_replicas=1, max_replicas=1)
    trace = sim.Trace("overload", 120.0, lambda t: 3 * SERVICE.capacity_per_s())
    capped = sim.Simulation(
        spec,
        SERVICE,
        trace,
        0,
        0.2,
        caps={sim.QUEUE_METRIC: 5000.0, sim.PENDING_METRIC: 3.0},
        windows_s=windows(),
    )
    capped.run()
    pod = capped.pods[0]
    assert capped._window_value(pod, 120.0, sim.QUEUE_METRIC) == 5000.0
    assert capped._window_value(pod, 120.0, sim.PENDING_METRIC) == 3.0
    assert capped._uncapped_window_value(pod, 120.0, sim.QUEUE_METRIC) > 5000.0


def test_simulated_windows_are_the_recording_rules_windows() -> None:
    # What the simulation reads each metric over comes from the rendered rules: the request
    # rate's own range, the pending requests' subquery range, the queue time's through its cap.
    assert windows()[sim.REQUEST_RATE_METRIC] == 45.0
    assert windows()[sim.QUEUE_METRIC] == 60.0
    assert windows()[sim.PENDING_METRIC] == 30.0


def test_a_metric_without_a_rendered_window_is_refused(hpa: HPASpec) -> None:
    simulation = sim.Simulation(hpa, SERVICE, sim.Trace("flat", 30.0, lambda t: 1.0), 0, 0.2)
    with pytest.raises(ValueError, match="no window"):
        simulation.run()  # its first sync reads the metrics


def test_seconds_over_objective_are_counted_at_the_simulations_resolution() -> None:
    # One slow second among fast ones: 1 s over the objective, not a 10 s bucket's worth.
    latencies = [0.01] * 50 + [0.5] * 20 + [0.01] * 50
    done = [i * 0.1 for i in range(50)] + [5.0 + 0.04 * i for i in range(20)]
    done += [6.0 + 0.1 * i for i in range(50)]
    result = sim.SimulationResult("s", "t", latencies, done, 0.0, [], objective_s=0.2)
    assert sim.RESOLUTION_S == sim.ORACLE_TICK_S == 1.0
    assert result.seconds_over_objective() == 1.0


def test_verdicts_over_seeds_are_three_way() -> None:
    assert sim.verdict([True, True, True]) == sim.MET
    assert sim.verdict([False, False, False]) == sim.NOT_MET
    assert sim.verdict([True, False, True]) == "inconclusive: 2 of 3 seeds within"


@pytest.fixture(scope="module")
def three_traces_three_seeds(hpa: HPASpec) -> list[sim.SimulationResult]:
    capacity = SERVICE.capacity_per_s() * hpa.min_replicas
    traces = [
        sim.step_trace(0.35 * capacity, 1.5 * capacity, at_s=60, duration_s=240),
        sim.spike_trace(0.35 * capacity, 2.0 * capacity, at_s=60, length_s=90, duration_s=240),
        sim.diurnal_trace(0.2 * capacity, 2.5 * capacity, period_s=480),
    ]
    return compare_all(hpa, traces, seeds=(1, 2, 3))


@pytest.mark.slow
def test_rows_are_medians_over_seeds_with_their_range(
    three_traces_three_seeds: list[sim.SimulationResult],
) -> None:
    assert {r.seed for r in three_traces_three_seeds} == {1, 2, 3}
    rows = sim.table(three_traces_three_seeds)
    assert len(rows) == 3 * len({r.signal for r in three_traces_three_seeds})
    for row in rows:
        assert row["seeds"] == 3
        low, high = (float(v) for v in str(row["replica_seconds_vs_oracle_range"]).split(" to "))
        assert low <= float(row["replica_seconds_vs_oracle"]) <= high  # type: ignore[arg-type]
        assert str(row["verdict"]).startswith((sim.MET, sim.NOT_MET, sim.INCONCLUSIVE))


@pytest.mark.slow
def test_no_policy_beats_the_oracle_on_cost_and_latency_at_once(
    three_traces_three_seeds: list[sim.SimulationResult],
) -> None:
    """The oracle with the shipped policy's headroom knows the demand: a policy with fewer
    replica-seconds *and* fewer seconds over the objective would mean a flawed yardstick."""
    results = three_traces_three_seeds
    oracles = {(r.trace, r.seed): r for r in results if r.signal == sim.ORACLE}
    beaten = [
        (r.trace, r.signal, r.seed, round(r.replica_seconds), r.seconds_over_objective())
        for r in results
        if r.signal != sim.ORACLE and sim.beats(r, oracles[(r.trace, r.seed)])
    ]
    assert beaten == [], [
        (key, round(o.replica_seconds), o.seconds_over_objective()) for key, o in oracles.items()
    ]


def test_the_oracle_frontier_trades_cost_for_latency(hpa: HPASpec) -> None:
    capacity = SERVICE.capacity_per_s() * hpa.min_replicas
    trace = sim.step_trace(0.35 * capacity, 1.5 * capacity, at_s=60, duration_s=240)
    points = sim.oracle_frontier(
        hpa, SERVICE, trace, 60, 0.2, POD_CAPACITY, headrooms=(0.6, 1.0), seeds=(1,)
    )
    tight, loose = points[1], points[0]  # headroom 1.0 plans fewer pods than 0.6
    assert tight["replica_seconds"] < loose["replica_seconds"]
    assert tight["seconds_over_objective"] >= loose["seconds_over_objective"]
