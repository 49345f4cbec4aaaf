"""`python -m lab autoscaling simulate`: the capacity SIMULATION, fed by measurements of the local
Triton."""

from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

from inference_tools.autoscaling import rendered_settings
from inference_tools.paths import KUSTOMIZE_DIR, MODEL_REPOSITORY, RESULTS_DIR
from inference_tools.repository_builds import build_if_default_repository

from lab.autoscaling import simulator as sim
from lab.autoscaling.service_times import Measurements, measure
from python_backend.contract import ENCODER

DEFAULT_OUT_DIR = RESULTS_DIR / "simulation"
LABEL = "SIMULATION (not measured on a cluster)"


def traces(capacity_per_s: float, scale: float = 1.0) -> list[sim.Trace]:
    """Step, spike and diurnal traces sized against the minimum replicas' capacity."""
    return [
        sim.step_trace(0.35 * capacity_per_s, 1.5 * capacity_per_s, duration_s=1200 * scale),
        sim.spike_trace(
            0.35 * capacity_per_s,
            2.0 * capacity_per_s,
            at_s=180 * scale,
            length_s=180 * scale,
            duration_s=900 * scale,
        ),
        sim.diurnal_trace(0.2 * capacity_per_s, 2.5 * capacity_per_s, period_s=2400 * scale),
    ]


def queue_policy(
    model_repository: Path = MODEL_REPOSITORY, model: str = ENCODER
) -> sim.QueuePolicy:
    """The bottleneck model's queue policy, as its config.pbtxt sets it (unbounded if absent)."""
    from inference_tools.model_config import config_as_dict, read_model_config

    config = config_as_dict(read_model_config(model_repository / model / "config.pbtxt"))
    policy = config.get("dynamic_batching", {}).get("default_queue_policy", {})
    return sim.QueuePolicy(
        max_queue_size=int(policy.get("max_queue_size", 0)),
        timeout_s=int(policy.get("default_timeout_microseconds", 0)) / 1e6,
    )


def run(args: argparse.Namespace) -> int:
    from lab.autoscaling.plots import plot_simulation

    out_dir: Path = args.out_dir
    if args.service_times and args.service_times.is_file():
        measured = Measurements.load(args.service_times)
    else:
        build_if_default_repository(MODEL_REPOSITORY)
        measured = measure(MODEL_REPOSITORY, machine=f"{os.cpu_count()} CPU cores")
        measured.save(out_dir / "service-times.json")
    rendered = rendered_settings.render(args.kustomization)
    hpa = rendered_settings.hpa_spec(rendered)
    service = measured.service_times()
    startup_s = measured.model_load_seconds + args.node_delay_seconds
    capacity = service.capacity_per_s() * hpa.min_replicas
    policy = queue_policy()
    calibration = sim.calibrate_pod(service, args.objective_ms / 1000, policy)
    seeds = args.seeds
    simulated_traces = traces(capacity, args.scale)
    results = sim.compare(
        hpa,
        service,
        simulated_traces,
        startup_s,
        args.objective_ms / 1000,
        policy=policy,
        calibration=calibration,
        caps=rendered_settings.adapter_metric_caps(rendered),
        windows_s=rendered_settings.adapter_metric_windows(rendered),
        seeds=seeds,
        oracle_headroom=sim.SHIPPED_HEADROOM,
    )
    rows = sim.table(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "simulation.csv").open("w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    context = {
        "label": LABEL,
        "service_seconds_per_batch": dict(
            zip(measured.batch_sizes, measured.seconds_per_batch, strict=True)
        ),
        "pod_capacity_per_s": round(service.capacity_per_s(), 1),
        "pod_at_objective": {
            "requests_per_s": round(calibration.capacity_per_s, 1),
            "queue_time_per_request_us": round(calibration.queue_time_per_request_us),
            "pending_requests": round(calibration.pending_requests, 2),
        },
        "pod_batch_size": service.max_batch,
        "queue_policy": {"max_queue_size": policy.max_queue_size, "timeout_s": policy.timeout_s},
        "startup_seconds": round(startup_s, 1),
        "model_load_seconds": round(measured.model_load_seconds, 1),
        "node_delay_seconds": args.node_delay_seconds,
        "latency_objective_ms": args.objective_ms,
        "hpa": str(args.kustomization),
        "seeds": list(seeds),
        "oracle_headroom": sim.SHIPPED_HEADROOM,
        "seconds_over_objective_resolution_s": sim.RESOLUTION_S,
    }
    markdown = (
        f"**{LABEL}**\n\n"
        f"Medians over {len(seeds)} seeds, the range beside the comparisons with the oracle; the "
        f"oracle plans at {sim.SHIPPED_HEADROOM:g} of the calibrated pod capacity, as the shipped "
        f"policy does; seconds over the objective counted in {sim.RESOLUTION_S:g} s buckets. "
        "Verdict: met on every seed, not met on none, else inconclusive.\n\n"
        + sim.markdown_table(rows)
        + "\n"
    )
    if args.frontier:
        frontier_rows = [
            {"trace": trace.name, **point}
            for trace in simulated_traces
            for point in sim.oracle_frontier(
                hpa,
                service,
                trace,
                startup_s,
                args.objective_ms / 1000,
                calibration.capacity_per_s,
                seeds=seeds,
                policy=policy,
            )
        ]
        markdown += (
            "\nThe oracle's cost against its latency over a sweep of headrooms (medians over "
            "the seeds): a policy below this curve on both axes would beat knowing the demand."
            "\n\n" + sim.markdown_table(frontier_rows) + "\n"
        )
    (out_dir / "simulation.md").write_text(markdown)
    (out_dir / "simulation-context.json").write_text(json.dumps(context, indent=2) + "\n")
    for trace in {r.trace for r in results}:
        plot_simulation(
            [r for r in results if r.trace == trace and r.seed == seeds[0]],
            out_dir / f"simulation-{trace}.png",
            f"{LABEL}: {trace} trace, pods start in {startup_s:.0f} s",
        )
    print(json.dumps(context, indent=2))
    print(markdown)
    return 0


SUMMARY = "capacity SIMULATION: replicas, HPA loop, traces, scaling signals compared"
DESCRIPTION = """\
A simulation, not a measurement: pods serve with the batch service times measured on the local
Triton and start in the measured model load time plus a node/image delay; step, spike and
diurnal traces are served under the oracle autoscaler (true demand, no delay, the pods it
needs at the calibrated per-pod capacity times the shipped policy's headroom) and under the HPA
algorithm with the rendered policy, its request-rate signal alone, the previous queue-only
policy and CPU utilisation, once per seed. Reports p95/p99 latency, seconds over the latency
objective, replica-seconds and refusals, each against the oracle (medians over the seeds with
their range, and a met / not met / inconclusive verdict), as a table and plots.
"""
EXAMPLES = """\
Examples:
  python -m lab autoscaling simulate                  # measures service times the first time
  python -m lab autoscaling simulate --objective-ms 300 --node-delay-seconds 120 \\
      --kustomization kustomize/overlays/gpu-hpa
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kustomization",
        type=Path,
        default=KUSTOMIZE_DIR / "overlays" / "cpu-hpa",
        help="overlay whose HorizontalPodAutoscaler and adapter rules are simulated",
    )
    parser.add_argument(
        "--service-times",
        type=Path,
        default=DEFAULT_OUT_DIR / "service-times.json",
        help="measurements to reuse; where the file is absent, measured afresh (about 2 minutes) "
        "and saved in --out-dir",
    )
    parser.add_argument(
        "--node-delay-seconds",
        type=float,
        default=60.0,
        help="node provisioning and image pull added to the model load time",
    )
    parser.add_argument(
        "--objective-ms", type=float, default=500.0, help="p95 latency objective, in ms"
    )
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="stretch (above 1) or shrink the traces' durations",
    )
    parser.add_argument(
        "--seeds",
        type=lambda text: tuple(int(part) for part in text.split(",") if part.strip()),
        # A string: argparse converts it with `type`, and the help shows it as it is typed.
        default=",".join(str(seed) for seed in sim.DEFAULT_SEEDS),
        metavar="N,N,...",
        help="random seeds of the arrivals: every trace runs once per seed, the table gives "
        "medians with their range (default: %(default)s)",
    )
    parser.add_argument(
        "--frontier",
        action="store_true",
        help="also sweep the oracle's headroom (0.6 to 1.0): its cost against its latency",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help="folder for the table (CSV, Markdown), the plots, the context and the measurements",
    )
