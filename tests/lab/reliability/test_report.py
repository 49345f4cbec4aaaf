"""The fault runs' summary table: markdown and CSV."""

from __future__ import annotations

import csv

from lab.reliability.report import ScenarioResult, write_reports


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
