"""Reading perf_analyzer 2.51's CSV reports (files captured from real runs in tests/perf/data)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from inference_tools.perf.perf_analyzer import (
    LoadLevel,
    PerfAnalyzerError,
    PerfAnalyzerSettings,
    parse_report,
)
from lab.perf.results import level_from_filename, read_measurements

DATA = Path(__file__).parent / "data"


def test_ensemble_report_with_composing_models() -> None:
    m = parse_report(DATA / "triton-concurrency-1.csv", LoadLevel("concurrency", 1))
    assert m.throughput_per_s == pytest.approx(66.4357)
    assert m.latency_us == {50: 9245, 90: 31207, 95: 47423, 99: 61303}
    assert m.avg_latency_us == 15003
    assert m.server is not None and m.server.queue_us == 1
    assert set(m.composing) == {"minilm", "pooler", "tokenizer"}
    minilm = m.composing["minilm"]
    assert (minilm.queue_us, minilm.compute_infer_us) == (2197, 10335)
    assert minilm.compute_us == 17 + 10335 + 425
    # --collect-metrics' GPU columns are present but empty on a CPU server: not kept.
    assert "Avg GPU Utilization" not in m.extra
    assert m.extra["response wait"] == "14914"


def test_openai_report_has_no_server_columns() -> None:
    m = parse_report(DATA / "microservice-concurrency-1.csv", LoadLevel("concurrency", 1))
    assert m.server is None and not m.composing
    assert m.p(99) == 23004


def test_report_without_percentiles_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "triton-concurrency-1.csv"
    broken.write_text("Concurrency,Inferences/Second\n1,10\n")
    with pytest.raises(PerfAnalyzerError, match="p50 latency"):
        parse_report(broken, LoadLevel("concurrency", 1))


def test_results_folder_is_read_by_file_names(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    shutil.copytree(DATA, raw)
    found = read_measurements(tmp_path)
    assert [m.level for m in found["triton"]] == [LoadLevel("concurrency", 1)]
    assert [m.level for m in found["microservice"]] == [LoadLevel("concurrency", 1)]
    assert level_from_filename("triton-rate-poisson-12.5.csv") == (
        "triton",
        LoadLevel("request_rate", 12.5, "poisson"),
    )
    assert level_from_filename("minilm_v1.triton-concurrency-1.csv") is None


def test_command_line() -> None:
    settings = PerfAnalyzerSettings(
        model="text_embedding",
        url="127.0.0.1:8001",
        protocol="grpc",
        input_data=Path("in.json"),
        metrics_url="127.0.0.1:8002/metrics",
    )
    command = settings.command(LoadLevel("request_rate", 40, "poisson"), "x.csv")
    assert command[1:7] == ["-m", "text_embedding", "-u", "127.0.0.1:8001", "-i", "grpc"]
    assert "--request-rate-range=40" in command
    assert "--request-distribution=poisson" in command
    assert "--collect-metrics" in command and "--verbose-csv" in command
    counted = PerfAnalyzerSettings(model="m", url="u", measurement_request_count=50)
    command = counted.command(LoadLevel("concurrency", 4), "x.csv")
    assert "--measurement-mode=count_windows" in command
    assert not any(arg.startswith("--measurement-interval") for arg in command)


def test_repeated_runs_of_a_level_are_read_as_their_median(tmp_path: Path) -> None:
    raw = tmp_path / "raw"
    raw.mkdir()
    report = (DATA / "triton-concurrency-1.csv").read_text()
    header, row = report.splitlines()[:2]
    column = header.split(",").index("Inferences/Second")
    for run, throughput in ((1, "50"), (2, "80"), (3, "60")):
        cells = row.split(",")
        cells[column] = throughput
        (raw / f"triton-concurrency-1-run{run}.csv").write_text(f"{header}\n{','.join(cells)}\n")
    (level,) = read_measurements(tmp_path)["triton"]
    assert level.throughput_per_s == 60.0
    assert level.throughput_range == (50.0, 80.0)
    assert level_from_filename("microservice-rate-poisson-12.5-run3.csv") == (
        "microservice",
        LoadLevel("request_rate", 12.5, "poisson"),
    )
