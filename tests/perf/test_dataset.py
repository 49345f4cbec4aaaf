"""The benchmark data set: reproducible, varied, and the same bytes in the Kubernetes Job."""

from __future__ import annotations

import re
from collections import Counter

from inference_tools.commands.perf.dataset import PERF_JOB_INPUT_DATA
from inference_tools.perf import dataset
from lab.perf.results import level_from_filename

from python_backend.tokenization import bucket_length


def test_same_texts_every_time_and_different_with_another_seed() -> None:
    assert dataset.generate_texts() == dataset.generate_texts()
    assert dataset.generate_texts(seed=1) != dataset.generate_texts()


def test_mix_spans_every_sequence_bucket_and_passes_the_256_token_window(tokenizer_json) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_json))
    tokenizer.no_truncation()
    texts = dataset.generate_texts()
    kinds = Counter(t.kind for t in texts)
    assert kinds == {"query": 90, "sentence": 77, "paragraph": 64, "document": 25}
    lengths = [len(tokenizer.encode(t.text).ids) for t in texts]
    buckets = Counter(bucket_length(n, (16, 32, 64, 128, 256)) for n in lengths)
    assert set(buckets) == {16, 32, 64, 128, 256}
    documents = [n for n, t in zip(lengths, texts, strict=True) if t.kind == "document"]
    assert min(documents) > 256
    assert len({t.text for t in texts}) > len(texts) // 2  # varied, not one repeated string


def test_perf_analyzer_json_has_one_batch1_request_per_text() -> None:
    texts = dataset.generate_texts(8)
    document = dataset.triton_input_data(texts)
    assert document["data"][3] == {"TEXT": {"content": [texts[3].text], "shape": [1]}}
    openai = dataset.openai_input_data(texts, "m")
    assert openai["data"][3] == {"payload": [{"model": "m", "input": [texts[3].text]}]}


def test_kubernetes_job_ships_the_generated_data_set(tmp_path) -> None:
    fresh = dataset.write_json(
        dataset.triton_input_data(dataset.generate_texts()), tmp_path / "input_data.json"
    )
    assert PERF_JOB_INPUT_DATA.read_bytes() == fresh.read_bytes(), (
        "run `inference-tools perf dataset` to refresh the Job's copy"
    )


def test_kubernetes_job_names_its_files_as_the_report_reads_them() -> None:
    script = (PERF_JOB_INPUT_DATA.parent / "sweep.sh").read_text()
    names = re.findall(r'"(triton-[a-z]+-\$\{[a-z]+\}(?:-\$\{[a-z]+\})?)"', script)
    assert sorted(names) == ["triton-concurrency-${c}", "triton-rate-${distribution}-${rate}"]
    assert level_from_filename("triton-concurrency-16.csv") is not None
    assert level_from_filename("triton-rate-poisson-40.csv") is not None
