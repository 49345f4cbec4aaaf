"""Calibrated targets: interpolation to the objective, the generated component, and a real sweep.

The local series get the ServiceMonitor's labels from inference_tools.autoscaling.servicemonitor,
which tests/e2e/test_monitoring.py holds equal to the real operator's on a real pod.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from inference_tools.autoscaling import calibrate, rendered_settings
from inference_tools.autoscaling.calibrate import LevelResult
from inference_tools.autoscaling.servicemonitor import LocalTarget, scrape_configs
from inference_tools.commands.autoscaling.calibrate import CALIBRATION_POD
from inference_tools.local_server import LocalTritonServer
from inference_tools.perf.dataset import generate_texts, triton_input_data, write_json
from inference_tools.perf.perf_analyzer import LoadLevel, PerfAnalyzerSettings
from inference_tools.prometheus_runner import LocalPrometheus, find_prometheus
from prometheus_api_client import PrometheusConnect

from python_backend.contract import ENSEMBLE
from tests.checkout import CHECKOUT, KUSTOMIZE_DIR

CPU_HPA = KUSTOMIZE_DIR / "overlays" / "cpu-hpa"
CPU_KEDA = KUSTOMIZE_DIR / "overlays" / "cpu-keda"


def level(
    concurrency: int, p95_ms: float, queue_us: float, pending: float, rate: float
) -> LevelResult:
    return LevelResult(
        LoadLevel("concurrency", concurrency), 20.0, 50.0, p95_ms, queue_us, pending, rate
    )


SWEEP = [
    level(1, 40.0, 1000.0, 0.2, 40.0),
    level(4, 120.0, 9000.0, 2.0, 100.0),
    level(8, 320.0, 41000.0, 6.0, 140.0),
    level(16, 900.0, 150000.0, 14.0, 150.0),
]


def test_crossing_interpolates_both_signals_between_the_levels_around_the_objective() -> None:
    result = calibrate.crossing(SWEEP, objective_ms=220.0, headroom=0.8)
    # 220 ms lies halfway from 120 ms (concurrency 4) to 320 ms (concurrency 8).
    assert result.between == (SWEEP[1], SWEEP[2])
    assert result.queue_time_at_objective_us == pytest.approx(25000.0)
    assert result.pending_at_objective == pytest.approx(4.0)
    assert result.queue_target_us == pytest.approx(20000.0)
    assert result.pending_target == pytest.approx(3.2)
    # The request rate at the crossing, times 0.9 for the HPA's 10% tolerance.
    assert result.requests_per_second_at_objective == pytest.approx(120.0)
    assert result.request_rate_target == pytest.approx(108.0)


def test_crossing_refuses_objectives_outside_the_measured_range() -> None:
    with pytest.raises(calibrate.CalibrationError, match="lightest level"):
        calibrate.crossing(SWEEP, objective_ms=30.0, headroom=0.8)
    with pytest.raises(calibrate.CalibrationError, match="heavier levels"):
        calibrate.crossing(SWEEP, objective_ms=1000.0, headroom=0.8)


def test_windows_of_the_rendered_rules_stretch_to_the_level() -> None:
    expressions = calibrate.signal_expressions(rendered_settings.render(CPU_HPA))
    stretched = calibrate.over_window(expressions["queue"], 42.4)
    assert "[1m]" in expressions["queue"] and "[1m]" not in stretched
    assert stretched.count("[42s]") == expressions["queue"].count("[1m]")
    assert "[30s]" not in calibrate.over_window(expressions["pending"], 42.4)


@pytest.mark.parametrize("overlay", [CPU_HPA, CPU_KEDA], ids=["hpa", "keda"])
def test_generated_component_sets_the_targets_of_hpa_and_keda(overlay: Path, tmp_path: Path):
    result = calibrate.crossing(SWEEP, objective_ms=220.0, headroom=0.8)
    files = calibrate.component_files(result, SWEEP, "a test sweep")
    assert (
        "p95 crosses 220 ms between concurrency 4 and concurrency 8" in files["kustomization.yaml"]
    )
    component = calibrate.write_component(files, tmp_path / "calibrated")
    # kustomize takes relative paths: reach the repository through a link beside the component.
    (tmp_path / "repo").symlink_to(CHECKOUT)
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    (deploy / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [f"../repo/kustomize/overlays/{overlay.name}"],
                "components": ["../calibrated"],
            }
        )
    )
    rendered = rendered_settings.render(deploy)
    assert component.is_dir()
    if overlay == CPU_HPA:
        targets = [m.target for m in rendered_settings.hpa_spec(rendered).metrics]
    else:
        targets = [
            t.threshold for t in rendered_settings.keda_triggers(rendered.one("ScaledObject"))
        ]
    assert targets == [pytest.approx(20000.0), pytest.approx(3.2), pytest.approx(108.0)]


def test_targets_are_written_as_the_api_writes_quantities() -> None:
    assert calibrate.quantity_text(20000) == "20000"
    assert calibrate.quantity_text(108.0) == "108"
    assert calibrate.quantity_text(3.2) == "3200m"
    assert calibrate.quantity_text(0.125) == "125m"


@pytest.mark.server
@pytest.mark.slow
def test_real_sweep_reads_both_signals_through_prometheus(
    triton_server: LocalTritonServer, tmp_path: Path
) -> None:
    find_prometheus()  # missing: a skip here, a failure in CI (the root conftest)
    rendered = rendered_settings.render(CPU_HPA)
    expressions = calibrate.signal_expressions(rendered)
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": scrape_configs(
            rendered,
            [LocalTarget(triton_server.metrics_url.split("/")[2], CALIBRATION_POD)],
            "1s",
        ),
    }
    settings = PerfAnalyzerSettings(
        model=ENSEMBLE,
        url=triton_server.grpc_url,
        protocol="grpc",
        input_data=write_json(triton_input_data(generate_texts()), tmp_path / "input.json"),
        measurement_interval_ms=3000,
        # Any two windows will do: the test compares the levels, not their precision.
        stability_percentage=1000,
        max_trials=3,
    )
    with LocalPrometheus(config, work_dir=tmp_path / "prometheus") as local:
        results = calibrate.sweep(
            settings,
            [LoadLevel("concurrency", 1), LoadLevel("concurrency", 8)],
            PrometheusConnect(url=local.url, disable_ssl=True),
            expressions,
            CALIBRATION_POD,
            tmp_path,
        )
    assert [r.level.value for r in results] == [1, 8]
    light, heavy = results
    assert light.throughput_per_s > 0 and heavy.throughput_per_s > 0
    # Eight requests in flight on one pod queue far longer than one at a time.
    assert heavy.queue_time_per_request_us > 2 * light.queue_time_per_request_us
    assert heavy.pending_requests > light.pending_requests
    assert heavy.p95_latency_ms > light.p95_latency_ms
