"""`python -m lab perf profile`: samples are charged to the right process and library, and a
short run against the real server, the real microservice and the in-process floor attributes
each system's CPU to its own processes. Nothing here judges speed."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from lab import process_tree
from lab.perf import cpu_profile
from lab.perf.where_time_goes import (
    FLOOR,
    MICROSERVICE,
    THIS_PROCESS,
    TRITON,
    Options,
    WhereTimeGoes,
)

ONNX = "ONNX Runtime (the model)"


def test_samples_are_charged_to_their_process_and_library() -> None:
    lines = [
        "         swapper     0  ffffffff8224379b ([kernel.kallsyms])",
        " triton_python_b   101      7f00 (/opt/ort/libonnxruntime.so.1.19.2)",
        " triton_python_b   101      7f01 (/usr/lib/libpython3.10.so.1.0)",
        "  tritonserver   100      7f02 (/opt/tritonserver/lib/libtritonserver.so)",
        "       rustc  4242      7f03 (/usr/bin/rustc)",
        " grpc worker x   100      7f04 (/usr/lib/x86_64-linux-gnu/libc.so.6)",
        "not a sample line",
    ]
    labels = {100: "tritonserver", 101: "minilm stub"}
    profile = cpu_profile.summarise(lines, labels, cores=2, frequency_hz=2)
    # Six samples at 2 Hz on 2 cores: the window they stand for is 1.5 s.
    assert profile.window_s == pytest.approx(1.5)
    assert profile.cpu_s("minilm stub") == pytest.approx(1.0)
    assert profile.cpu_s("minilm stub", ONNX) == pytest.approx(0.5)
    assert profile.cpu_s("tritonserver", "C and C++ runtime") == pytest.approx(0.5)
    assert profile.cpu_s(category_name="Triton core and backends") == pytest.approx(0.5)
    assert profile.idle_s == pytest.approx(0.5) and profile.others_s == pytest.approx(0.5)
    assert profile.labels[0] in ("tritonserver", "minilm stub")


def test_a_stub_is_named_by_the_model_it_serves() -> None:
    stub = ["/x/triton_python_backend_stub", "/repo/minilm/1/model.onnx", "shm", "1", "1",
            "7", "/x/python", "336", "minilm_0_1", "/x/onnxruntime"]  # fmt: skip
    assert process_tree.label_of(7, stub) == "minilm stub"
    assert process_tree.label_of(8, ["/venv/bin/python", "-m", "lab.perf.microservice"]) == (
        "microservice"
    )
    assert process_tree.label_of(9, ["/usr/bin/perf_analyzer", "-m", "x"]) == "perf_analyzer"
    assert process_tree.label_of(10, []) == "pid 10"


def test_descendants_start_with_the_parent() -> None:
    found = process_tree.descendants(os.getpid())
    assert found[0] == os.getpid()


def _can_sample() -> bool:
    with contextlib.suppress(cpu_profile.ProfilerMissing, OSError):
        cpu_profile.perf_binary()
        return int(Path("/proc/sys/kernel/perf_event_paranoid").read_text()) <= 0 or (
            os.geteuid() == 0
        )
    return False


@pytest.fixture(scope="module")
def short_profile(model_repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator:
    if not _can_sample():
        pytest.skip("system-wide perf sampling needs perf (make system-deps) and root")
    out = tmp_path_factory.mktemp("where-time-goes")
    profile = WhereTimeGoes(
        Options(
            out_dir=out,
            model_repository=model_repository,
            concurrency=(1,),
            protocols=("grpc",),
            window_ms=1500,
            repeats=1,
            dataset_size=32,
        )
    )
    report = profile.run(lambda what: contextlib.nullcontext())
    yield profile, report


@pytest.mark.server
@pytest.mark.slow
def test_each_system_is_charged_to_its_own_processes(short_profile) -> None:
    profile, report = short_profile
    by_system = {run.case.system: run for run in profile.runs}
    assert set(by_system) == {FLOOR, TRITON, MICROSERVICE}
    for run in profile.runs:
        assert run.texts_per_s > 0 and run.total_cpu_ms_per_text > 0, run
    triton = by_system[TRITON].cpu_ms_per_text
    assert {"tritonserver", "minilm stub", "tokenizer stub", "perf_analyzer"} <= set(triton)
    assert "microservice" in by_system[MICROSERVICE].cpu_ms_per_text
    floor = by_system[FLOOR]
    assert set(floor.cpu_ms_per_text) >= {THIS_PROCESS}
    # The model alone spends its time in ONNX Runtime, and Triton's stages are reported.
    assert (
        max(floor.cpu_ms_per_text_by_category[THIS_PROCESS].items(), key=lambda kv: kv[1])[0]
        == ONNX
    )
    assert "minilm" in by_system[TRITON].stages_us
    text = report.read_text()
    assert "## Concurrency 1" in text and "by process: minilm stub" in text
    assert (report.parent / "cpu_per_text.csv").read_text().count("\n") > 5
    assert (report.parent / "cpu_per_text.png").stat().st_size > 10_000
