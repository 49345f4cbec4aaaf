"""`python -m lab autoscaling demo`: the autoscaling loop on this machine, with a CSV and a
plot."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from inference_tools.commands.autoscaling.options import add_scrape_interval
from inference_tools.commands.options import add_model_repository
from inference_tools.local_server import LocalTritonServer
from inference_tools.paths import KUSTOMIZE_DIR, RESULTS_DIR
from inference_tools.repository_builds import build_if_default_repository

from lab.autoscaling.local_loop import loop_kustomizations
from lab.autoscaling.loop import LoadPhase, LoopResult, LoopSettings, run_loop

DEFAULT_OUT_DIR = RESULTS_DIR / "autoscaling"


def summary(result: LoopResult) -> dict[str, float | int | None]:
    high = result.phase_starts_s.get("high")
    delay = result.scale_out_delay_s()
    return {
        "scrape_interval_s": result.scrape_interval_s,
        "sync_period_s": result.sync_period_s,
        "scale_out_decision_after_step_s": None if delay is None else round(delay, 1),
        "scale_out_decision_after_step_scrapes": None
        if delay is None
        else round(delay / result.scrape_interval_s, 1),
        "keda_scale_out_decision_after_step_s": None
        if result.keda is None or (d := result.scale_out_delay_s(keda=True)) is None
        else round(d, 1),
        "back_to_minimum_after_load_stops_s": None
        if (b := result.back_to_minimum_delay_s()) is None
        else round(b, 1),
        "peak_desired_replicas": max((r.hpa_replicas for r in result.rows), default=None),
        "step_at_s": None if high is None else round(high, 1),
    }


def run(args: argparse.Namespace) -> int:
    from lab.autoscaling.plots import plot_loop

    out_dir: Path = args.out_dir
    build_if_default_repository(args.model_repository)
    kustomizations = loop_kustomizations(args.kustomize_dir, out_dir / "kustomize")
    settings = LoopSettings(
        hpa_kustomization=args.hpa_kustomization or kustomizations["hpa"],
        keda_kustomization=None
        if args.no_keda
        else args.keda_kustomization or kustomizations["keda"],
        phases=(
            LoadPhase("low", args.low_concurrency, args.low_seconds),
            LoadPhase("high", args.high_concurrency, args.high_seconds),
            LoadPhase("none", 0, args.idle_seconds),
        ),
        scrape_interval_s=args.scrape_interval,
        sync_period_s=args.sync_period,
    )
    with LocalTritonServer(args.model_repository) as server:
        result = run_loop(
            settings,
            server,
            out_dir,
            on_row=lambda r: print(
                f"{r.time_s:7.1f}s {r.phase:5} in flight {r.offered_concurrency:3d}  "
                f"queue {(r.queue_time_per_request_us or 0) / 1000:7.1f} ms  "
                f"pending {r.pending_requests or 0:5.1f}  "
                f"requests/s {r.requests_per_second or 0:6.1f}  "
                f"HPA {r.hpa_replicas:2d}  KEDA {r.keda_replicas or '-'}",
                flush=True,
            ),
        )
    png = plot_loop(
        result,
        out_dir / "autoscale-timeline.png",
        "Autoscaling loop on one machine: real Triton, Prometheus and perf_analyzer",
    )
    facts = summary(result)
    (out_dir / "autoscale-summary.json").write_text(json.dumps(facts, indent=2) + "\n")
    print(json.dumps(facts, indent=2))
    print(f"timeline: {out_dir / 'autoscale-timeline.csv'}\nplot: {png}")
    return 0


SUMMARY = "run the autoscaling loop locally: Triton, Prometheus, perf_analyzer, HPA algorithm"
DESCRIPTION = """\
Serve the model repository with a real Triton, put a stepped load on it with perf_analyzer
(low, well above one replica's capacity, none), scrape it with a real Prometheus loaded with the
rendered recording rules, evaluate the rendered adapter and KEDA queries every sync period and
apply the HPA algorithm with the rendered settings. Writes a CSV timeline, a PNG plot and a
summary (how long the scale-out decision took after the step, and the return to the minimum).
"""
EXAMPLES = """\
Examples:
  python -m lab autoscaling demo                  # HPA and KEDA, five minutes at most
  python -m lab autoscaling demo --no-keda --high-concurrency 32 --high-seconds 90
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_repository(parser, help="model repository to serve")
    parser.add_argument(
        "--kustomize-dir",
        type=Path,
        default=KUSTOMIZE_DIR,
        help="kustomize folder whose overlays/cpu-hpa and cpu-keda the loop runs",
    )
    for path in ("hpa", "keda"):
        parser.add_argument(
            f"--{path}-kustomization",
            type=Path,
            help=f"another kustomization for the {path.upper()} path (default: "
            f"overlays/cpu-{path}, loop settings)",
        )
    parser.add_argument("--no-keda", action="store_true", help="only the HPA path")
    phases = parser.add_argument_group(
        "load phases", "low load, then high load (the step), then none until back at the minimum"
    )
    phases.add_argument(
        "--low-concurrency",
        type=int,
        default=1,
        help="requests in flight in the first phase, within one replica's capacity",
    )
    phases.add_argument("--low-seconds", type=float, default=30.0, help="length of the first phase")
    phases.add_argument(
        "--high-concurrency",
        type=int,
        default=24,
        help="requests in flight in the step, well above one replica's capacity",
    )
    phases.add_argument("--high-seconds", type=float, default=60.0, help="length of the step")
    phases.add_argument(
        "--idle-seconds",
        type=float,
        default=180.0,
        help="longest wait for the return to the minimum after the load stops",
    )
    add_scrape_interval(parser)
    parser.add_argument(
        "--sync-period",
        type=float,
        default=3.0,
        help="how often both autoscalers decide, in seconds; a cluster's HPA decides every 15",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help="folder for the timeline CSV, the plot, the summary and the loop's kustomizations",
    )
