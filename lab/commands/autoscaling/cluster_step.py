"""`python -m lab autoscaling cluster-step`: load steps recorded on `make cluster` beside the
simulator's prediction of each (lab/autoscaling/cluster_step.py)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from inference_tools.autoscaling import rendered_settings
from inference_tools.paths import MODEL_REPOSITORY, RESULTS_DIR
from inference_tools.repository_builds import build_if_default_repository

from lab.autoscaling import cluster_step
from lab.autoscaling import simulator as sim
from lab.autoscaling.service_times import Measurements, measure
from lab.commands.autoscaling.simulate import DEFAULT_OUT_DIR as SIMULATION_DIR
from lab.commands.autoscaling.simulate import queue_policy

DEFAULT_OUT_DIR = RESULTS_DIR / "cluster-step"
# The overlay the cluster scenarios run (maxReplicas 4; targets and behavior the shipped ones).
SCENARIO_OVERLAY = Path("tests/e2e/overlays/cpu-hpa-scaling")


def run(args: argparse.Namespace) -> int:
    if args.service_times.is_file():
        measured = Measurements.load(args.service_times)
    else:
        build_if_default_repository(MODEL_REPOSITORY)
        measured = measure(MODEL_REPOSITORY, machine=f"{os.cpu_count()} CPU cores")
        measured.save(args.service_times)
    service = measured.service_times()
    objective_s = args.objective_ms / 1000
    rendered = rendered_settings.render(args.kustomization)
    hpa = rendered_settings.hpa_spec(rendered)
    policy = queue_policy()
    windows = rendered_settings.adapter_metric_windows(rendered)
    caps = rendered_settings.adapter_metric_caps(rendered)
    calibration = sim.calibrate_pod(service, objective_s, policy)
    # Two predictions: the policy's meaning with targets calibrated on the simulated pod (as
    # `make simulate` runs it), and the cluster's own target values and caps.
    variants = {
        "simulated, targets calibrated on the simulated pod": (
            sim.with_simulated_calibration(hpa, calibration),
            sim.simulated_caps(caps, calibration),
        ),
        "simulated, the cluster's targets": (hpa, {n: c.value for n, c in caps.items()}),
    }
    rows = []
    for folder in args.recorded:
        recorded = cluster_step.load_recording(folder, objective_s)
        rows.append(cluster_step.table_row(recorded.name, "measured", recorded.measured))
        predicted: dict[cluster_step.StepFigures, list[str]] = {}
        for source, (spec, spec_caps) in variants.items():
            figures = cluster_step.simulate_step(recorded, spec, service, objective_s, policy,
                                                 spec_caps, windows, args.seeds)  # fmt: skip
            predicted.setdefault(figures, []).append(source)
        # One row where both predictions agree.
        for figures, sources in predicted.items():
            source = sources[0] if len(sources) == 1 else "simulated, either targets (the same)"
            rows.append(cluster_step.table_row(recorded.name, source, figures))
    context = {
        "service_seconds_per_batch": dict(
            zip(measured.batch_sizes, measured.seconds_per_batch, strict=True)
        ),
        "service_times_machine": measured.machine,
        "simulated_pod_at_objective": {
            "requests_per_s": round(calibration.capacity_per_s, 1),
            "queue_time_per_request_us": round(calibration.queue_time_per_request_us),
            "pending_requests": round(calibration.pending_requests, 2),
        },
        "objective_ms": args.objective_ms,
        "hpa": str(args.kustomization),
        "seeds": list(args.seeds),
    }
    markdown = sim.markdown_table(rows) + "\n"
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "cluster-step.md").write_text(markdown)
    (args.out_dir / "cluster-step-context.json").write_text(json.dumps(context, indent=2) + "\n")
    print(json.dumps(context, indent=2))
    print(markdown)
    return 0


SUMMARY = "load steps recorded on make cluster beside the simulator's prediction"
DESCRIPTION = """\
Reads each recorded load step (figures.json, requests.csv of tests/e2e/load_step.py) and runs
the simulator on the same step: the same offered rate for as long as the recorded load lasted,
the HPA of the overlay the cluster ran, pods that start in the recorded cold start, service
times measured on this machine as `make simulate` measures them. One row measured, two
simulated (targets calibrated on the simulated pod; the cluster's own targets) per recording.
"""
EXAMPLES = """\
Examples:
  python -m lab autoscaling cluster-step --recorded .work/e2e/autoscaling
  python -m lab autoscaling cluster-step --recorded run1 --recorded run2 --objective-ms 300
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--recorded", type=Path, action="append", required=True,
                        help="a folder the cluster's load step wrote (repeatable)")  # fmt: skip
    parser.add_argument("--kustomization", type=Path, default=SCENARIO_OVERLAY,
                        help="the overlay the cluster ran (its HPA and rules)")  # fmt: skip
    parser.add_argument("--service-times", type=Path,
                        default=SIMULATION_DIR / "service-times.json",
                        help="measurements to reuse (`make simulate`'s); measured afresh and "
                        "saved there where absent (about 2 minutes)")  # fmt: skip
    parser.add_argument("--objective-ms", type=float, default=300.0,
                        help="p95 latency objective, in ms")  # fmt: skip
    parser.add_argument(
        "--seeds",
        type=lambda text: tuple(int(part) for part in text.split(",") if part.strip()),
        default=",".join(str(seed) for seed in sim.DEFAULT_SEEDS),
        metavar="N,N,...",
        help="random seeds of the simulated arrivals; the medians are given (default: %(default)s)",
    )
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR,
                        help="folder for the table and its context")  # fmt: skip
