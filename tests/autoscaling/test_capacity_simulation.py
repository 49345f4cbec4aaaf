"""The capacity simulation's accounting and the behaviour of the signals it compares.

Synthetic service times keep these fast; `inference-tools autoscaling simulate` feeds it measured
ones.
"""

from __future__ import annotations

import dataclasses

import pytest
from inference_tools.autoscaling import rendered_settings
from inference_tools.autoscaling import simulator as sim
from inference_tools.autoscaling.hpa import HPASpec
from inference_tools.commands.autoscaling.simulate import LABEL, queue_policy

from tests.checkout import KUSTOMIZE_DIR

SERVICE = sim.ServiceTimes((1, 2, 4, 8, 16), (0.010, 0.014, 0.022, 0.040, 0.090))


@pytest.fixture(scope="module")
def hpa() -> HPASpec:
    return rendered_settings.hpa_spec(
        rendered_settings.render(KUSTOMIZE_DIR / "overlays" / "cpu-hpa")
    )


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
    result = sim.Simulation(hpa, SERVICE, trace, startup_s=60, objective_s=0.2).run()
    assert {running for _, running, _, _ in result.timeline} == {hpa.min_replicas}
    assert result.replica_seconds == pytest.approx(hpa.min_replicas * 300.0, rel=0.01)
    # Light load: requests mostly run alone, so latency is about one batch-of-1 service time.
    assert result.percentile_ms(50) == pytest.approx(10.0, rel=0.3)
    assert result.seconds_over_objective() == 0
    assert result.rejected == 0


def test_queue_signal_decides_before_cpu_on_a_spike(hpa: HPASpec) -> None:
    capacity = SERVICE.capacity_per_s() * hpa.min_replicas
    trace = sim.spike_trace(0.3 * capacity, 2.5 * capacity, at_s=60, length_s=120, duration_s=420)
    results = {
        r.signal: r for r in sim.compare(hpa, SERVICE, [trace], startup_s=60, objective_s=0.2)
    }
    deployed = results["queue time + pending (deployed)"]
    cpu = results["CPU 80%"]
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
        spec, SERVICE, trace, 60, 0.2, policy=sim.QueuePolicy(max_queue_size=16, timeout_s=0.5)
    ).run()
    assert bounded.rejected > 0
    assert max(bounded.latencies_s) < 0.5 + SERVICE.for_batch(SERVICE.max_batch) + 1e-6


def test_queue_policy_comes_from_the_model_configuration() -> None:
    policy = queue_policy()
    assert policy.max_queue_size > 0 and policy.timeout_s > 0


def test_every_report_says_it_is_a_simulation(hpa: HPASpec) -> None:
    trace = sim.Trace("flat", 60.0, lambda t: 10.0)
    rows = sim.table(sim.compare(hpa, SERVICE, [trace], startup_s=30, objective_s=0.2))
    assert "SIMULATION" in LABEL
    assert {row["signal"] for row in rows} == set(sim.signal_specs(hpa))
