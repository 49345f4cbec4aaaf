"""One row per scenario: what was done to the server and what the clients saw."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COLUMNS = (
    ("scenario", "Scenario"),
    ("load", "Load"),
    ("faults", "Faults injected"),
    ("requests_sent", "Requests sent"),
    ("requests_failed", "Requests failed"),
    ("recovery", "Recovery time"),
    ("verdict", "Result"),
)


@dataclass
class ScenarioResult:
    scenario: str
    load: str
    faults: str
    requests_sent: int
    requests_failed: int
    # Seconds from the fault until clients were served normally again; None: nothing to recover.
    recovery_s: float | None
    passed: bool
    notes: str = ""
    # Measurements the tests assert on, beyond the table's columns.
    details: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, str]:
        recovery = (
            "n/a"
            if self.recovery_s is None or math.isnan(self.recovery_s)
            else f"{self.recovery_s:.1f} s"
        )
        verdict = "as expected" if self.passed else "UNEXPECTED"
        return {
            "scenario": self.scenario,
            "load": self.load,
            "faults": self.faults,
            "requests_sent": str(self.requests_sent),
            "requests_failed": str(self.requests_failed),
            "recovery": recovery,
            "verdict": verdict + (f": {self.notes}" if self.notes else ""),
        }


def markdown_table(results: Sequence[ScenarioResult]) -> str:
    header = "| " + " | ".join(title for _, title in COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in COLUMNS) + "|"
    lines = [header, rule]
    for result in results:
        row = result.row()
        cells = [row[key].replace("|", "\\|").replace("\n", " ") for key, _ in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_reports(
    results: Sequence[ScenarioResult], out_dir: Path, preamble: str = ""
) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown = out_dir / "reliability-summary.md"
    markdown.write_text((preamble + "\n\n" if preamble else "") + markdown_table(results))
    table = out_dir / "reliability-summary.csv"
    with table.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[key for key, _ in COLUMNS])
        writer.writeheader()
        for result in results:
            writer.writerow(result.row())
    return markdown, table
