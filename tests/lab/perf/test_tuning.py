"""`inference-tools perf tune`: variant configs, their repositories, and a short real run.

The run serves two variants with real Triton servers and checks that every variant and the
floor were measured and the table names them; it judges no timing.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from inference_tools.model_config import read_model_config
from lab.perf.tuning import (
    TUNING_CSV,
    TUNING_MD,
    Sample,
    TuningOptions,
    TuningResult,
    Variant,
    default_variants,
    render_tuning,
    run_tuning,
    variant_repository,
)


def test_variants_parse_and_refuse_nonsense() -> None:
    assert Variant.parse("2x1") == Variant(2, 1)
    assert Variant.parse("4X4").name == "4x4"
    for bad in ("2", "x1", "0x2", "2x0", "twoxone", "1x2x3"):
        with pytest.raises(ValueError, match=r"INSTANCESxTHREADS|at least 1"):
            Variant.parse(bad)


def test_default_variants_follow_the_core_count() -> None:
    assert default_variants(2) == [Variant(1, 2), Variant(2, 1)]
    assert default_variants(16) == [Variant(1, 16), Variant(2, 8), Variant(16, 1)]
    assert default_variants(1) == [Variant(1, 1), Variant(2, 1)]


def test_variant_repository_changes_only_the_encoder_settings(
    model_repository: Path, tmp_path: Path
) -> None:
    original = (model_repository / "minilm" / "config.pbtxt").read_text()
    copy = variant_repository(model_repository, tmp_path / "repo", Variant(3, 2), "minilm")
    config = read_model_config(copy / "minilm" / "config.pbtxt")
    assert [group.count for group in config.instance_group] == [3]
    assert config.parameters["intra_op_thread_count"].string_value == "2"
    base = read_model_config(model_repository / "minilm" / "config.pbtxt")
    config.ClearField("instance_group")
    base.ClearField("instance_group")
    del config.parameters["intra_op_thread_count"]
    del base.parameters["intra_op_thread_count"]
    assert config == base
    # The source repository is untouched (the copy hard-links what it does not change).
    assert (model_repository / "minilm" / "config.pbtxt").read_text() == original
    for name in ("tokenizer", "text_embedding"):
        assert (copy / name / "config.pbtxt").read_text() == (
            model_repository / name / "config.pbtxt"
        ).read_text()


def test_ratios_take_medians_and_the_better_floor() -> None:
    samples = [
        Sample(r, "in-process", "batch 1, 1 thread", 100.0, 6.0 + r, 20.0) for r in (1, 2, 3)
    ]
    samples += [Sample(r, "in-process", "batch 1, default threads", 150, 4.0, 15) for r in (1, 2)]
    samples += [Sample(1, "in-process", "batch 8, default threads", 200.0, 40.0, 80.0)]
    samples += [Sample(r, "2x1", "c1", 80.0, p50, 30.0) for r, p50 in ((1, 5.0), (2, 6.0), (3, 90))]
    samples += [Sample(1, "2x1", "c16", 180.0, 90.0, 150.0)]
    result = TuningResult(samples)
    assert result.floor_batch1_p50() == 4.0
    assert result.floor_best_throughput() == 200.0
    assert result.median("2x1", "c1", "p50_ms") == 6.0
    assert result.saturation("2x1") == 180.0
    options = TuningOptions(Path("."), Path("."), (Variant(2, 1), Variant(1, 2)))
    table = render_tuning(result, options)
    assert "| 2x1 | 6.00 | 1.50x | 180.0 | 0.90x | 150.0 |" in table
    assert "| 1x2 | n/a | n/a | n/a | n/a | n/a |" in table


@pytest.mark.server
@pytest.mark.slow
def test_short_run_measures_every_variant_and_the_floor(
    model_repository: Path, tmp_path: Path
) -> None:
    options = TuningOptions(
        out_dir=tmp_path,
        model_repository=model_repository,
        variants=(Variant(1, 1), Variant(2, 1)),
        concurrency=(1, 2),
        rounds=1,
        measurement_request_count=16,
        inprocess_seconds=0.5,
        floor_batch_size=4,
        dataset_size=32,
    )
    result = run_tuning(options)
    assert {(s.system, s.level) for s in result.samples if s.system != "in-process"} == {
        ("1x1", "c1"),
        ("1x1", "c2"),
        ("2x1", "c1"),
        ("2x1", "c2"),
    }
    assert all(s.throughput_per_s > 0 and s.p50_ms <= s.p99_ms for s in result.samples)
    with (tmp_path / TUNING_CSV).open() as stream:
        assert len(list(csv.DictReader(stream))) == len(result.samples)
    table = (tmp_path / TUNING_MD).read_text()
    assert "| 1x1 |" in table and "| 2x1 |" in table and "n/a" not in table
