"""A load step recorded on `make cluster` (tests/e2e/load_step.py) beside the simulator's
prediction of the same step: the same offered rate for as long as the cluster's load lasted,
the same HPA (the overlay the cluster ran), pods that start in the cold start measured there,
service times measured on this machine as `make simulate` measures them.

Measured and simulated figures are counted alike: seconds from the step to the first decision
above minReplicas and to the first new pod Ready, the peak replica count, seconds from the end
of the load to the decision back at minReplicas, and seconds over the latency objective (1 s
buckets by completion time whose p95, of the requests answered, tops the objective)."""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from inference_tools.autoscaling.hpa_spec import HPASpec

from lab.autoscaling import simulator as sim
from lab.reliability.load import OK

# Simulated time before the step: as the cluster scenario's baseline.
BASELINE_S = 15.0
# Simulated time after the load: long enough to be back at minReplicas.
AFTER_LOAD_S = 400.0


@dataclass(frozen=True)
class StepFigures:
    """Seconds from the step (decision, first new pod Ready) or from the end of the load (back
    at minReplicas); None where it did not happen."""

    decision_s: float | None
    first_new_pod_ready_s: float | None
    peak_replicas: int | None
    back_to_min_s: float | None
    seconds_over_objective: float
    # Of the requests offered: refused by a queue policy, or (on the cluster) never sent
    # because every one of the generator's workers was still waiting when the load stopped.
    not_served_percent: float


@dataclass(frozen=True)
class RecordedStep:
    name: str
    offered_per_s: float
    load_s: float  # step to load stopped
    startup_s: float  # mean cold start of the new pods, created to Ready
    measured: StepFigures


def seconds_over(completions: Sequence[float], latencies: Sequence[float], objective_s: float,
                 bucket_s: float = sim.RESOLUTION_S) -> float:  # fmt: skip
    """As `SimulationResult.seconds_over_objective`: buckets where more than 5% of the requests
    finished in them took longer than the objective."""
    if not latencies:
        return 0.0
    buckets = (np.asarray(completions) // bucket_s).astype(np.int64)
    slow = (np.asarray(latencies) > objective_s).astype(np.float64)
    finished = np.bincount(buckets)
    over = np.bincount(buckets, weights=slow, minlength=len(finished))
    return bucket_s * int(np.count_nonzero(over > 0.05 * finished))


def load_recording(folder: Path, objective_s: float) -> RecordedStep:
    figures = json.loads((folder / "figures.json").read_text())
    marks = figures["marks_after_step_s"]
    starts = [s["total_s"] for s in figures.get("cold_starts") or []]
    ok_latency, ok_done, offered = [], [], 0
    with (folder / "requests.csv").open() as handle:
        for row in csv.DictReader(handle):
            offered += 1
            if row["status"] == OK:
                latency = float(row["latency_s"])
                ok_latency.append(latency)
                ok_done.append(float(row["due_s"]) + latency)
    back = marks.get("back at min")
    stopped = marks.get("load stopped")
    return RecordedStep(
        name=f"{folder.parent.name}: {figures.get('autoscaler', folder.name)}",
        offered_per_s=float(figures["offered_per_s"]),
        load_s=float(stopped),
        startup_s=statistics.mean(starts) if starts else float("nan"),
        measured=StepFigures(
            decision_s=marks.get("decision"),
            first_new_pod_ready_s=marks.get("new pod Ready"),
            peak_replicas=figures.get("peak_desired_replicas"),
            back_to_min_s=None if back is None or stopped is None else round(back - stopped, 1),
            seconds_over_objective=seconds_over(ok_done, ok_latency, objective_s),
            not_served_percent=round(100 * (offered - len(ok_latency)) / max(1, offered), 2),
        ),
    )


def step_on_cluster(offered_per_s: float, load_s: float) -> sim.Trace:
    """Nothing for BASELINE_S, then the offered rate for `load_s`, then nothing."""
    end = BASELINE_S + load_s
    return sim.Trace("cluster step", end + AFTER_LOAD_S,
                     lambda t: offered_per_s if BASELINE_S <= t < end else 0.0)  # fmt: skip


def simulated_figures(result: sim.SimulationResult, minimum: int, load_s: float,
                      startup_s: float) -> StepFigures:  # fmt: skip
    """The figures of one simulated run, on the same clock as the recording's."""
    end = BASELINE_S + load_s
    decision = next((t for t, running, _, _ in result.timeline
                     if t >= BASELINE_S and running > minimum), None)  # fmt: skip
    back = next((t for t, running, _, _ in result.timeline
                 if t >= end and running == minimum), None)  # fmt: skip
    completions = [t - BASELINE_S for t in result.completion_times_s]
    served = len(result.latencies_s)
    return StepFigures(
        decision_s=None if decision is None else decision - BASELINE_S,
        # A simulated pod is ready exactly `startup_s` after the decision that added it.
        first_new_pod_ready_s=None if decision is None else decision - BASELINE_S + startup_s,
        peak_replicas=max(running for _, running, _, _ in result.timeline),
        back_to_min_s=None if back is None else back - end,
        seconds_over_objective=seconds_over(completions, result.latencies_s, result.objective_s),
        not_served_percent=round(100 * result.rejected / max(1, served + result.rejected), 2),
    )


def median_figures(runs: Sequence[StepFigures]) -> StepFigures:
    def median(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return None if len(known) < len(values) else float(statistics.median(known))

    peak = median([r.peak_replicas for r in runs])
    return StepFigures(
        decision_s=median([r.decision_s for r in runs]),
        first_new_pod_ready_s=median([r.first_new_pod_ready_s for r in runs]),
        peak_replicas=None if peak is None else round(peak),
        back_to_min_s=median([r.back_to_min_s for r in runs]),
        seconds_over_objective=float(statistics.median(r.seconds_over_objective for r in runs)),
        not_served_percent=float(statistics.median(r.not_served_percent for r in runs)),
    )


def simulate_step(recorded: RecordedStep, hpa: HPASpec, service: sim.ServiceTimes,
                  objective_s: float, policy: sim.QueuePolicy, caps: dict[str, float],
                  windows_s: dict[str, float], seeds: Sequence[int]) -> StepFigures:  # fmt: skip
    """The recorded step through the simulator, once per seed; the medians."""
    trace = step_on_cluster(recorded.offered_per_s, recorded.load_s)
    runs = []
    for seed in seeds:
        simulation = sim.Simulation(
            hpa, service, trace, recorded.startup_s, objective_s, seed, sim.SHIPPED, policy,
            caps=caps, windows_s=windows_s,
        )  # fmt: skip
        runs.append(simulated_figures(simulation.run(), hpa.min_replicas, recorded.load_s,
                                      recorded.startup_s))  # fmt: skip
    return median_figures(runs)


def _text(value: float | int | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table_row(name: str, source: str, figures: StepFigures) -> dict[str, str]:
    return {
        "run": name,
        "source": source,
        "step to decision s": _text(figures.decision_s),
        "step to first new pod Ready s": _text(figures.first_new_pod_ready_s),
        "peak replicas": _text(figures.peak_replicas, 0),
        "load stop to minReplicas s": _text(figures.back_to_min_s),
        "seconds over objective": _text(figures.seconds_over_objective, 0),
        "not served % of offered": _text(figures.not_served_percent, 1),
    }
