"""The canary probe's verdicts on a real server, and the summary table's format."""

from __future__ import annotations

import csv

import pytest
from inference_tools.local_server import free_port
from lab.reliability.report import ScenarioResult, write_reports
from pod_hooks import health_probe


@pytest.mark.server
def test_probe_passes_on_a_serving_server(triton_server, capsys):
    url = f"http://{triton_server.http_url}"
    assert health_probe.main([f"--url={url}", "--check-ready"]) == 0
    # Every entry model the server reports gets a canary; its composing models do not.
    assert capsys.readouterr().out.strip() == "digits answered; text_embedding answered"


def test_probe_fails_where_no_server_answers(capsys):
    assert health_probe.main([f"--url=http://127.0.0.1:{free_port()}", "--timeout-seconds=1"]) == 1
    assert "no answer" in capsys.readouterr().err


@pytest.mark.server
def test_probe_fails_for_a_model_the_server_does_not_have(triton_server):
    result = health_probe.probe(f"http://{triton_server.http_url}", models=["text_embeding"])
    assert not result.healthy and "unknown model" in result.reason, result.reason


def test_summary_table_in_markdown_and_csv(tmp_path):
    results = [
        ScenarioResult("rolling restart", "6 clients", "2 replicas | replaced", 100, 0, None, True),
        ScenarioResult("stub killed", "6 clients", "SIGKILL", 50, 3, 9.14, False, notes="slow"),
    ]
    markdown, table = write_reports(results, tmp_path, "Measured here.")
    lines = markdown.read_text().splitlines()
    assert lines[0] == "Measured here."
    assert lines[2].startswith("| Scenario | Load | Faults injected | Requests sent |")
    assert "2 replicas \\| replaced" in lines[4]  # a cell's pipe cannot break the table
    assert lines[5].endswith("| 50 | 3 | 9.1 s | UNEXPECTED: slow |")
    rows = list(csv.DictReader(table.open()))
    assert [r["requests_failed"] for r in rows] == ["0", "3"]
    assert rows[0]["recovery"] == "n/a"
