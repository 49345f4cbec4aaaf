"""`inference-tools perf run --smoke` against the real local server: the report is produced and
parses. Nothing here judges speed: the run is too short and the machine too busy for that."""

from __future__ import annotations

import csv
import math
from dataclasses import replace
from pathlib import Path

import pytest
from lab.commands.perf.run import DEFAULT_OUT
from lab.perf.ratios import INCONCLUSIVE
from lab.perf.report import write_report
from lab.perf.suite import SuiteOptions, run_suite, smoke
from matplotlib import image

from tests.checkout import CHECKOUT

pytestmark = [pytest.mark.server, pytest.mark.slow]


@pytest.fixture(scope="module")
def smoke_report(triton_server, model_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("perf")
    options = smoke(
        SuiteOptions(
            out_dir=out,
            model_repository=model_repository,
            url=triton_server.http_url,
            metrics_url=triton_server.metrics_url.removeprefix("http://"),
        )
    )
    return run_suite(options)


def test_report_files_exist_and_parse(smoke_report) -> None:
    text = smoke_report.markdown.read_text()
    assert text.startswith("# Benchmark: text_embedding on Triton")
    for plot in smoke_report.plots:
        assert plot.name in text
        pixels = image.imread(plot)
        assert pixels.shape[0] > 100 and pixels.shape[1] > 100
    with smoke_report.results_csv.open() as stream:
        rows = list(csv.DictReader(stream))
    systems = {row["system"] for row in rows}
    assert systems == {"triton", "microservice", "in-process"}
    # The floor as served: one caller per encoder instance, beside the batch sweep.
    assert any(row["mode"] == "batch 1 (served-parallel)" for row in rows), rows
    assert all(float(row["throughput_per_s"]) > 0 for row in rows)
    assert all(float(row["p50_us"]) <= float(row["p99_us"]) for row in rows)


def test_every_target_is_computed(smoke_report) -> None:
    assert [r.key for r in smoke_report.ratios] == [
        "latency_c1_overhead",
        "latency_c1",
        "throughput_saturation",
        "microservice",
        "microservice_latency_c1",
    ]
    text = smoke_report.markdown.read_text()
    for ratio in smoke_report.ratios:
        # Every graded target says met, not met or inconclusive, and why it is inconclusive.
        assert ratio.verdict_text in text
        if ratio.key == "microservice" and ratio.value is None:
            # A smoke run's p99 can miss the objective on a busy machine: then no comparison.
            assert ratio.verdict == INCONCLUSIVE and "no comparison" in (ratio.reason or "")
            continue
        assert ratio.value is not None and math.isfinite(ratio.value), ratio
        assert ratio.value >= 0 or ratio.unit == "ms"  # a difference can be negative
        assert ratio.value_text in text
    assert "Ceiling of the microservice ratio on this machine: " in (
        smoke_report.markdown.read_text()
    )


@pytest.fixture(scope="module")
def serving_path_report(model_repository: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("serving-path")
    options = smoke(SuiteOptions(out_dir=out, model_repository=model_repository))
    return run_suite(replace(options, serving_path="only"))


def test_serving_path_mode_reports_texts_per_core_for_each_protocol_and_size(
    serving_path_report,
) -> None:
    text = serving_path_report.markdown.read_text()
    assert "## Serving path alone (encoder swapped for a lookup graph)" in text
    by_key = {r.key: r for r in serving_path_report.ratios}
    assert set(by_key) == {
        f"serving_path_{protocol}_{texts}" for protocol in ("http", "grpc") for texts in (1, 64)
    }
    for ratio in by_key.values():
        assert ratio.verdict_text in text
        if ratio.value is None:
            # A smoke run on a busy machine may keep p99 ≤ 100 ms at no level: inconclusive.
            assert "no level kept p99" in (ratio.reason or ""), ratio
            continue
        assert ratio.value > 0 and ratio.spread is not None, ratio  # two runs per level
        assert ratio.value_text in text
    # Targets are graded over gRPC; HTTP is reported for reading.
    assert by_key["serving_path_grpc_64"].target == 4000
    assert by_key["serving_path_http_64"].target is None
    (plot,) = serving_path_report.plots
    assert plot.name in text and image.imread(plot).shape[0] > 100
    with serving_path_report.results_csv.open() as stream:
        systems = {row["system"] for row in csv.DictReader(stream)}
    assert systems == {
        f"serving-path {protocol} {texts} texts"
        for protocol in ("http", "grpc")
        for texts in (1, 64)
    }
    # The lookup repository was a scratch copy: the served repository keeps its encoder.
    assert not (
        serving_path_report.markdown.parent / "raw" / "serving-path" / "model_repository"
    ).exists()


def test_server_side_breakdown_names_each_composing_model(smoke_report) -> None:
    with smoke_report.breakdown_csv.open() as stream:
        models = {row["model"] for row in csv.DictReader(stream)}
    assert models == {"tokenizer", "minilm"}


def test_report_is_rebuilt_from_the_files_alone(smoke_report) -> None:
    first = smoke_report.markdown.read_text()
    smoke_report.markdown.unlink()
    again = write_report(smoke_report.markdown.parent)
    assert again.markdown.read_text() == first


def test_scratch_output_is_ignored_by_git() -> None:
    gitignore = (CHECKOUT / ".gitignore").read_text().splitlines()
    assert "perf/results/" in gitignore
    assert DEFAULT_OUT.is_relative_to(Path("perf") / "results")  # from the checkout's root


def test_another_model_is_measured_alone(triton_server, model_repository: Path, tmp_path: Path):
    # `make perf PERF_MODEL=digits`: a plain model with numeric inputs, perf_analyzer's data.
    options = smoke(
        SuiteOptions(
            out_dir=tmp_path,
            model_repository=model_repository,
            url=triton_server.http_url,
            model="digits",
            metrics_url=triton_server.metrics_url.removeprefix("http://"),
        )
    )
    report = run_suite(options)
    text = report.markdown.read_text()
    assert text.startswith("# Benchmark: digits on Triton")
    assert "digits: measured without the baselines" in text
    with report.results_csv.open() as stream:
        rows = list(csv.DictReader(stream))
    assert {row["system"] for row in rows} == {"triton"}
    assert all(float(row["throughput_per_s"]) > 0 for row in rows)
