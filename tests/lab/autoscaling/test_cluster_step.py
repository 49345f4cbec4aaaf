"""A load step recorded on the cluster read back, and the simulator run on the same step: the
figures are counted alike on both sides. Synthetic service times and a synthetic recording keep
it fast; `python -m lab autoscaling cluster-step` reads the real ones."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from inference_tools.autoscaling import rendered_settings
from lab.autoscaling import cluster_step
from lab.autoscaling import simulator as sim
from lab.reliability.load import NOT_SENT, OK

from tests.e2e.conftest import LOCAL_OVERLAYS

SERVICE = sim.ServiceTimes((1, 2, 4, 8, 16), (0.010, 0.014, 0.022, 0.040, 0.090))


def write_recording(folder: Path) -> None:
    """A step of 100 s: the first 20 s answered in 0.1 s, the rest in 0.5 s, one refused, one
    never sent; decided at 30 s, back at the minimum 80 s after the load stopped."""
    folder.mkdir()
    marks = {"step": 0.0, "decision": 30.0, "new pod Ready": 42.0, "load stopped": 100.0,
             "back at min": 180.0}  # fmt: skip
    figures = {"autoscaler": "cpu-hpa", "offered_per_s": 50.0, "peak_desired_replicas": 4,
               "marks_after_step_s": marks, "cold_starts": [{"total_s": 11.0},
                                                            {"total_s": 13.0}]}  # fmt: skip
    (folder / "figures.json").write_text(json.dumps(figures))
    with (folder / "requests.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["due_s", "latency_s", "status", "waited_s"])
        for tenth in range(1000):
            due = tenth / 10
            writer.writerow([due, 0.1 if due < 20 else 0.5, OK, 0.0])
        writer.writerow([50.0, 0.01, "503", 0.0])
        writer.writerow([99.9, 0.0, NOT_SENT, 0.0])


def test_a_recording_gives_the_figures_from_the_step_and_the_end_of_the_load(
    tmp_path: Path,
) -> None:
    write_recording(tmp_path / "run")
    recorded = cluster_step.load_recording(tmp_path / "run", objective_s=0.3)
    measured = recorded.measured
    assert (measured.decision_s, measured.first_new_pod_ready_s) == (30.0, 42.0)
    assert (measured.peak_replicas, measured.back_to_min_s) == (4, 80.0)
    assert recorded.load_s == 100.0 and recorded.startup_s == 12.0
    # Answers of requests due from 20 s on finish from 20.5 to 100.4 s: 81 buckets over.
    assert measured.seconds_over_objective == 81.0
    # The refused request and the one never sent were offered and not served.
    assert measured.not_served_percent == pytest.approx(200 / 1002, abs=0.01)


def test_seconds_over_the_objective_are_counted_as_the_simulator_counts_them() -> None:
    rendered = rendered_settings.render(LOCAL_OVERLAYS / "cpu-hpa-scaling")
    windows = rendered_settings.adapter_metric_windows(rendered)
    trace = sim.step_trace(20, 400, 30, 120)
    spec = rendered_settings.hpa_spec(rendered)
    result = sim.Simulation(spec, SERVICE, trace, 5.0, 0.3, windows_s=windows).run()
    assert (
        cluster_step.seconds_over(result.completion_times_s, result.latencies_s, 0.3)
        == result.seconds_over_objective()
    )


def test_the_simulated_step_scales_out_after_the_step_and_back_after_the_load(
    tmp_path: Path,
) -> None:
    write_recording(tmp_path / "run")
    recorded = cluster_step.load_recording(tmp_path / "run", objective_s=0.3)
    rendered = rendered_settings.render(LOCAL_OVERLAYS / "cpu-hpa-scaling")
    spec = rendered_settings.hpa_spec(rendered)
    caps = {n: c.value for n, c in rendered_settings.adapter_metric_caps(rendered).items()}
    # 50/s against a pod that serves at most ~180/s in batches of 16 stays within two pods...
    quiet = cluster_step.simulate_step(recorded, spec, SERVICE, 0.3, sim.QueuePolicy(64, 2.0),
                                       caps, rendered_settings.adapter_metric_windows(rendered),
                                       seeds=(1,))  # fmt: skip
    assert quiet.decision_s is None and quiet.peak_replicas == spec.min_replicas
    # ...and ten times that does not.
    loud = cluster_step.RecordedStep("loud", 500.0, recorded.load_s, recorded.startup_s,
                                     recorded.measured)  # fmt: skip
    figures = cluster_step.simulate_step(loud, spec, SERVICE, 0.3, sim.QueuePolicy(64, 2.0),
                                         caps, rendered_settings.adapter_metric_windows(rendered),
                                         seeds=(1, 2))  # fmt: skip
    assert figures.decision_s is not None and 0 < figures.decision_s < recorded.load_s
    assert figures.first_new_pod_ready_s == pytest.approx(figures.decision_s + 12.0)
    assert spec.min_replicas < (figures.peak_replicas or 0) <= spec.max_replicas
    assert figures.back_to_min_s is not None and figures.back_to_min_s > 0
