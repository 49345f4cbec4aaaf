"""The serving-path mode's pieces that need no server: the lookup repository and its data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
from inference_tools.model_config import read_model_config
from inference_tools.perf import dataset
from inference_tools.perf.perf_analyzer import LoadLevel, Measurement
from lab.perf import serving_path, serving_path_report
from lab.perf.ratios import INCONCLUSIVE
from lab.repository_copy import TOKENIZER_CONFIG

from tests.checkout import CHECKOUT

# perf_analyzer reports captured from real runs, shared with the tooling's CSV tests.
DATA = CHECKOUT / "tests" / "perf" / "data"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_lookup_repository_swaps_the_encoder_lifts_its_token_budget_and_leaves_the_source(
    model_repository: Path, tmp_path: Path
) -> None:
    source_encoder = model_repository / serving_path.ENCODER_FILE
    before = _sha256(source_encoder)
    copy = serving_path.lookup_repository(model_repository, tmp_path / "repo")
    assert _sha256(source_encoder) == before
    lookup = onnx.load(str(copy / serving_path.ENCODER_FILE))
    real = onnx.load(str(source_encoder), load_external_data=False)
    assert [o.name for o in lookup.graph.output] == [o.name for o in real.graph.output]
    assert {n.op_type for n in lookup.graph.node}.isdisjoint({"Softmax", "LayerNormalization"})
    source_tokenizer = model_repository / TOKENIZER_CONFIG
    tokenizer_before = source_tokenizer.read_text()
    for config in model_repository.glob("*/config.pbtxt"):
        if config != source_tokenizer:
            assert (copy / config.relative_to(model_repository)).read_text() == config.read_text()
    # The budget is sized for the real encoder's cost: a full 64-text request of documents
    # (what the serving path sends) passes the copy's tokenizer; the source keeps its budget.
    assert source_tokenizer.read_text() == tokenizer_before
    tokenizer = read_model_config(copy / TOKENIZER_CONFIG)
    lifted = int(tokenizer.parameters["max_request_tokens"].string_value)
    assert lifted == tokenizer.max_batch_size * int(tokenizer.parameters["max_tokens"].string_value)


def test_input_data_holds_every_kind_of_text_one_per_entry() -> None:
    texts = serving_path.serving_texts()
    document = serving_path.input_data(texts)
    assert len(document["data"]) == len(texts) == dataset.DEFAULT_SIZE
    assert all(entry["TEXT"]["shape"] == [1] for entry in document["data"])
    # Paragraphs and documents (35% of the data set) are graded too, not left out.
    assert set(serving_path.TEXT_KINDS) == {kind for kind, _ in dataset.KIND_SHARES}
    assert max(len(text.split()) for text in texts) > 100


def _level(concurrency: int, throughput: float, p99_ms: float) -> Measurement:
    latency = {p: p99_ms * 1000 for p in (50, 90, 95, 99)}
    return Measurement(
        LoadLevel("concurrency", concurrency), throughput, latency, None, server=None
    )


def _result(*runs: tuple[int, float, float]) -> serving_path.ServingPathResult:
    points = tuple(
        serving_path.ServingPathPoint("grpc", 1, _level(c, t, p99), run=index + 1)
        for index, (c, t, p99) in enumerate(runs)
    )
    return serving_path.ServingPathResult(2.0, points)


def test_the_graded_level_is_the_fastest_within_100_ms_on_the_medians_of_its_runs() -> None:
    result = _result(
        (4, 900, 40),
        (4, 1000, 45),
        (4, 1100, 50),  # median 1000 texts/s, p99 45 ms
        (16, 1500, 90),
        (16, 1700, 150),
        (16, 1800, 160),  # faster, but median p99 150 ms
    )
    graded = result.graded("grpc", 1)
    assert graded is not None and graded.concurrency == 4
    assert result.per_core("grpc", 1) == 500.0
    assert result.per_core_range("grpc", 1) == (450.0, 550.0)


def test_no_level_within_the_bound_is_inconclusive_not_a_number() -> None:
    result = _result((1, 500, 120), (1, 520, 130), (1, 510, 140))
    ratios = {r.key: r for r in serving_path_report.targets(result)}
    graded = ratios["serving_path_grpc_1"]
    assert graded.value is None and graded.verdict == INCONCLUSIVE
    assert "no level kept p99 ≤ 100 ms" in (graded.reason or "")
    assert ratios["serving_path_grpc_64"].reason == "not measured"


def test_repeated_runs_are_read_back_from_their_files(tmp_path: Path) -> None:
    folder = tmp_path / "raw" / serving_path.FOLDER
    folder.mkdir(parents=True)
    (folder / serving_path.RUN_JSON).write_text('{"cpus": 2}')
    report = (DATA / "triton-concurrency-1.csv").read_text()
    for run in (1, 2, 3):
        (folder / f"grpc-1texts-concurrency-4-run{run}.csv").write_text(report)
    read = serving_path.read(tmp_path)
    assert read is not None and sorted(p.run for p in read.points) == [1, 2, 3]
    (level,) = read.levels("grpc", 1)
    assert level.concurrency == 4 and len(level.runs) == 3
