"""`inference-tools perf measure`: the tooling measures a running server with perf_analyzer, no
baseline and no lab needed."""

from __future__ import annotations

from pathlib import Path

import pytest
from inference_tools.cli import main
from inference_tools.local_server import LOOPBACK, free_port

pytestmark = pytest.mark.server


def test_measures_the_default_model_at_each_level(
    triton_server, model_repository: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "perf",
            "measure",
            f"--url={triton_server.http_url}",
            f"--model-repository={model_repository}",
            "--concurrency=1,2",
            "--duration-ms=1000",
            # The test machine is shared: what is checked is the plumbing, not the numbers.
            "--stability-percentage=100",
            f"--out={tmp_path}",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0, out
    assert out.splitlines()[0] == f"text_embedding at {triton_server.http_url} (http)"
    rows = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith("conc")}
    assert set(rows) == {"1", "2"}
    # req/s, p50/p95/p99 ms, and the server's queue and compute times per request.
    assert all(len(row) == 2 + 6 and float(row[2]) > 0 for row in rows.values())
    assert sorted(p.name for p in tmp_path.glob("text_embedding-*.csv")) == [
        "text_embedding-concurrency-1.csv",
        "text_embedding-concurrency-2.csv",
    ]


def test_a_server_that_does_not_answer_fails_the_command(
    model_repository: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(
        [
            "perf",
            "measure",
            f"--url={LOOPBACK}:{free_port()}",
            f"--model-repository={model_repository}",
            "--concurrency=1",
            "--duration-ms=500",
            f"--out={tmp_path}",
        ]
    )
    assert status == 1
    assert "failed: perf_analyzer failed at concurrency 1" in capsys.readouterr().err
