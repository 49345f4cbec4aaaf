"""The whole autoscaling loop on this machine: real Triton, perf_analyzer, Prometheus, the rendered
rules and queries, and the HPA algorithm with the rendered settings (a few minutes)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from inference_tools.local_server import LocalTritonServer
from lab.autoscaling.local_loop import loop_kustomizations
from lab.autoscaling.loop import LoadPhase, LoopResult, LoopSettings, run_loop
from lab.autoscaling.plots import plot_loop
from lab.commands.autoscaling.demo import summary

from tests.checkout import KUSTOMIZE_DIR

pytestmark = [pytest.mark.slow, pytest.mark.server]

SCRAPE_INTERVAL_S = 1
SYNC_PERIOD_S = 3.0
# From the step to a scale-out decision: the queue must build up and be finished by some
# requests, scraped, recorded and read at the next sync. 20 scrapes is a generous bound; the
# measured delay is a handful of seconds.
SCALE_OUT_BOUND_SCRAPES = 20
# From the end of the load back to the minimum: the queue-time rate forgets the overload after
# its 1-minute window, then the 30 s scale-down window passes; allow 60 s for the
# backlog to drain and the syncs to line up.
RATE_WINDOW_S = 60


@pytest.fixture(scope="module")
def loop(triton_server: LocalTritonServer, tmp_path_factory: pytest.TempPathFactory) -> LoopResult:
    out_dir = tmp_path_factory.mktemp("autoscale-loop")
    kustomizations = loop_kustomizations(KUSTOMIZE_DIR, out_dir / "kustomize")
    settings = LoopSettings(
        hpa_kustomization=kustomizations["hpa"],
        keda_kustomization=kustomizations["keda"],
        phases=(
            LoadPhase("low", 1, 20.0),
            LoadPhase("high", 24, 45.0),
            LoadPhase("none", 0, 180.0),
        ),
        scrape_interval_s=SCRAPE_INTERVAL_S,
        sync_period_s=SYNC_PERIOD_S,
    )
    result = run_loop(settings, triton_server, out_dir)
    result.extra["out_dir"] = out_dir
    plot_loop(result, out_dir / "autoscale-timeline.png", "autoscaling loop (test)")
    return result


def test_low_load_keeps_the_minimum(loop: LoopResult) -> None:
    low = [r for r in loop.rows if r.phase == "low"]
    assert low and all(r.hpa_replicas == loop.hpa.min_replicas for r in low)
    measured = [r.queue_time_per_request_us for r in low if r.queue_time_per_request_us is not None]
    assert measured and max(measured) < loop.queue_target_us


def test_scale_out_decided_within_bounded_scrapes_of_the_step(loop: LoopResult) -> None:
    delay = loop.scale_out_delay_s()
    assert delay is not None, "the HPA never asked for more than its minimum under overload"
    assert delay <= SCALE_OUT_BOUND_SCRAPES * SCRAPE_INTERVAL_S + SYNC_PERIOD_S
    keda_delay = loop.scale_out_delay_s(keda=True)
    assert keda_delay is not None
    assert keda_delay <= SCALE_OUT_BOUND_SCRAPES * SCRAPE_INTERVAL_S + SYNC_PERIOD_S
    high = [r for r in loop.rows if r.phase == "high"]
    assert max(r.queue_time_per_request_us or 0 for r in high) > loop.queue_target_us


def test_returns_to_the_minimum_after_the_scale_down_window(loop: LoopResult) -> None:
    window = loop.hpa.behavior.scale_down.stabilization_window_seconds
    back = loop.back_to_minimum_delay_s()
    assert back is not None, "the HPA did not return to its minimum after the load stopped"
    # Not before the window: the stabilisation keeps the highest recent recommendation.
    assert back >= window
    assert back <= RATE_WINDOW_S + window + 60
    assert loop.rows[-1].hpa_replicas == loop.hpa.min_replicas
    assert loop.rows[-1].keda_replicas == loop.keda.min_replicas


def test_writes_the_timeline_and_the_plot(loop: LoopResult) -> None:
    out_dir: Path = loop.extra["out_dir"]
    with (out_dir / "autoscale-timeline.csv").open() as stream:
        rows = list(csv.DictReader(stream))
    assert len(rows) == len(loop.rows)
    assert {"offered_concurrency", "queue_time_per_request_us", "pending_requests"} <= set(rows[0])
    png = out_dir / "autoscale-timeline.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    facts = summary(loop)
    assert facts["scale_out_decision_after_step_s"] == round(loop.scale_out_delay_s(), 1)
