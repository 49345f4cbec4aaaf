"""`python -m lab reliability`: the fault scenarios at full length, and their summary table."""

from __future__ import annotations

import argparse
import logging
import platform
import time
from collections.abc import Callable
from pathlib import Path

from inference_tools.commands.options import add_model_repository
from inference_tools.paths import work_dir

from lab.reliability.pod_lifecycle import DEFAULT_OVERLAY, PodLifecycle, pod_lifecycle
from lab.reliability.report import ScenarioResult, markdown_table, write_reports
from lab.reliability.scenarios.backend_crash import scenario as backend_crash
from lab.reliability.scenarios.drain_cases import scenario as drain_cases
from lab.reliability.scenarios.hostile_input import max_size_loopers
from lab.reliability.scenarios.hostile_input import scenario as hostile_input
from lab.reliability.scenarios.local_stop import scenario as local_stop
from lab.reliability.scenarios.overload import scenario as overload
from lab.reliability.scenarios.restart_at_once import scenario as restart_at_once
from lab.reliability.scenarios.rolling_restart import scenario as rolling_restart
from lab.reliability.scenarios.sigterm_in_flight import scenario as sigterm_in_flight
from lab.reliability.scenarios.soak import scenario as soak

LOG = logging.getLogger(__name__)

SUMMARY = "run the fault and overload scenarios and write the summary table"
DESCRIPTION = """\
Run every fault scenario against real local Triton servers, with the shutdown sequence and
probe timings read from the rendered Kubernetes manifests, and write the summary table
(Markdown and CSV). Each scenario that shows a protection working is paired with a control run
without it, which must fail: that is how the table shows the tests can tell the difference.

Takes about 25 minutes with the default soak; needs nginx (make system-deps) and kubectl.
"""
EXAMPLES = """\
Examples:
  python -m lab reliability                         # all, 10-minute soak
  python -m lab reliability --soak-minutes 60 --only soak
"""

Scenario = Callable[[Path, PodLifecycle, argparse.Namespace], ScenarioResult]


def _scenarios() -> dict[str, list[Scenario]]:
    return {
        "rolling-restart": [
            lambda repo, life, args: rolling_restart.run(
                repo, life, replicas=2, workers_per_protocol=4
            ),
            lambda repo, life, args: rolling_restart.run(
                repo, life, replicas=2, replacements=1, pre_stop=False, workers_per_protocol=4
            ),
            lambda repo, life, args: rolling_restart.run(
                repo,
                life,
                replicas=2,
                replacements=1,
                pre_stop=False,
                workers_per_protocol=4,
                grpc_retry=True,
            ),
        ],
        "stop-in-flight": [
            lambda repo, life, args: sigterm_in_flight.run(repo, life),
            lambda repo, life, args: sigterm_in_flight.run(
                repo, life, drain=False, protocols=("grpc",)
            ),
        ],
        "local-stop": [
            lambda repo, life, args, stop=stop: local_stop.run(repo, stop=stop)
            for stop in local_stop.STOPS
        ],
        # The exact drain (unloading) against what no metric shows, and its fallback in mode none.
        "drain-limits": [
            lambda repo, life, args: drain_cases.long_execution(args.slow_model_repository, life),
            lambda repo, life, args: drain_cases.long_execution(
                args.slow_model_repository, life, model="slow_pipeline"
            ),
            lambda repo, life, args: drain_cases.long_execution(
                args.slow_model_repository, life, requests=2, model_control_mode="none"
            ),
            lambda repo, life, args: drain_cases.arrivals_during_drain(repo, life),
        ],
        "restart-at-once": [lambda repo, life, args: restart_at_once.run(repo)],
        "backend-crash": [
            lambda repo, life, args: backend_crash.run(repo, life, canary=True),
            lambda repo, life, args: backend_crash.run(
                repo, life, canary=False, observe_s=life.liveness.detection_s + 10
            ),
        ],
        "overload": [
            lambda repo, life, args: overload.run(repo, duration_s=60.0),
            lambda repo, life, args: overload.run(repo, duration_s=30.0, queue_limits=False),
            lambda repo, life, args: overload.run(repo, duration_s=60.0, grpc_retry=True),
        ],
        "hostile-input": [
            lambda repo, life, args: hostile_input.run(repo, life),
            lambda repo, life, args: hostile_input.run(repo, life, edge_in_front=False),
            lambda repo, life, args: max_size_loopers.run(repo, life),
        ],
        "model-store": [_model_store],
        "soak": [lambda repo, life, args: soak.run(repo, duration_s=args.soak_minutes * 60)],
    }


def _model_store(repo: Path, life: PodLifecycle, args: argparse.Namespace) -> ScenarioResult:
    from lab.reliability.scenarios.model_store import scenario as model_store

    return model_store.run()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_repository(parser, help="model repository the scenarios serve")
    parser.add_argument(
        "--overlay",
        default=DEFAULT_OVERLAY,
        help="overlay (kustomize/overlays/NAME) whose shutdown sequence and probe timings to "
        "replay",
    )
    parser.add_argument(
        "--slow-model-repository",
        type=Path,
        default=drain_cases.SLOW_MODEL_REPOSITORY,
        help="a repository whose model sleeps in execute, as a GPU kernel would; the one "
        "shipped with the package by default",
    )
    parser.add_argument(
        "--soak-minutes", type=float, default=10.0, help="length of the soak scenario"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(_scenarios()),
        help="run only these scenarios (repeatable)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder for reliability-summary.md/.csv (default: reliability/ in the work folder, "
        ".work or $INFERENCE_TOOLS_WORK_DIR)",
    )


def run(args: argparse.Namespace) -> int:
    lifecycle = pod_lifecycle(args.overlay)
    repository = args.model_repository.resolve()
    results: list[ScenarioResult] = []
    started = time.monotonic()
    for name, variants in _scenarios().items():
        if args.only and name not in args.only:
            continue
        for variant in variants:
            LOG.info("scenario %s ...", name)
            result = variant(repository, lifecycle, args)
            LOG.info("%s: %s", result.scenario, result.row()["verdict"])
            results.append(result)
    out = args.out or work_dir() / "reliability"
    preamble = (
        f"Measured on {platform.node() or 'this machine'} ({platform.machine()}, "
        f"{_cpu_count()} CPUs), overlay `{args.overlay}`, "
        f"{(time.monotonic() - started) / 60:.0f} minutes in all."
    )
    markdown, table = write_reports(results, out, preamble)
    print(markdown_table(results))
    print(f"written: {markdown}, {table}")
    return 0 if all(r.passed for r in results) else 1


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0))
