"""The in-process floor's batch-1 runs before and after Triton's c1 measure one thread setting,
so that comparing them says whether the machine moved, not which setting won each time."""

from __future__ import annotations

from pathlib import Path

import pytest
from lab.perf import inprocess, suite
from lab.perf.inprocess import InProcessResult


def test_the_run_after_triton_repeats_the_setting_that_won_before(
    model_repository: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = suite.Suite(suite.SuiteOptions(out_dir=tmp_path, model_repository=model_repository))
    run.pipelines = {0: "default threads", 1: "one thread"}  # type: ignore[dict-item]
    # One thread wins before; default threads would win after, were both measured again.
    rates = iter([50.0, 60.0, 96.0])
    called: list[str] = []

    def closed_loop(pipeline, texts, batch_size, seconds) -> InProcessResult:
        called.append(pipeline)
        return InProcessResult("in-process batch 1", 1, next(rates), {50: 1.0}, 1)

    monkeypatch.setattr(inprocess, "closed_loop", closed_loop)
    before = run._closed(1)()
    after = run._closed(1, again=True)()
    assert called == ["default threads", "one thread", "one thread"]
    assert before.label.endswith("1 ONNX Runtime thread") and run.floor_threads == 1
    assert after.label == before.label and after.throughput_per_s == 96.0
