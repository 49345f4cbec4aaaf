"""A run's results folder: where each measurement is written and how it is read back.

The layout is the contract between the places that measure (the local suite, the Kubernetes
Job, which runs perf_analyzer alone) and the report, which reads only files:

    raw/triton-<level>.csv             perf_analyzer -f report of the ensemble at one level
    raw/<model>_v<n>.triton-<level>.csv   the same for each composing model
    raw/microservice-<level>.csv       the FastAPI baseline driven by perf_analyzer
    raw/inprocess.csv                  the in-process floor (written by the suite)
    run.json                           what was measured, where, with which settings
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from inference_tools.perf.perf_analyzer import (
    PERCENTILES,
    LoadLevel,
    Measurement,
    parse_report,
)

from lab.perf.inprocess import InProcessResult

TRITON = "triton"
MICROSERVICE = "microservice"
INPROCESS = "in-process"
RAW = "raw"
INPROCESS_CSV = "inprocess.csv"
RUN_JSON = "run.json"

_SLUG = re.compile(
    r"^(?P<system>triton|microservice)-(?:concurrency-(?P<concurrency>[0-9.]+)|"
    r"rate-(?P<distribution>constant|poisson)-(?P<rate>[0-9.]+))\.csv$"
)


def level_from_filename(name: str) -> tuple[str, LoadLevel] | None:
    match = _SLUG.match(name)
    if match is None:
        return None
    if match["concurrency"]:
        return match["system"], LoadLevel("concurrency", float(match["concurrency"]))
    return match["system"], LoadLevel("request_rate", float(match["rate"]), match["distribution"])


def read_measurements(results_dir: Path) -> dict[str, list[Measurement]]:
    """Every perf_analyzer level in raw/, per system, in load order."""
    found: dict[str, list[Measurement]] = {TRITON: [], MICROSERVICE: []}
    for path in sorted((results_dir / RAW).glob("*.csv")):
        parsed = level_from_filename(path.name)
        if parsed is None:
            continue
        system, level = parsed
        found[system].append(parse_report(path, level))
    for measurements in found.values():
        measurements.sort(key=lambda m: (m.level.mode, m.level.distribution, m.level.value))
    return found


INPROCESS_FIELDS = (
    "role",
    "label",
    "batch_size",
    "offered_per_s",
    "throughput_per_s",
    "requests",
    *(f"p{p}_us" for p in PERCENTILES),
)


@dataclass(frozen=True)
class InProcessRow:
    role: str  # "batch1-before", "batch1-after", "batch", "offered-<distribution>"
    result: InProcessResult


def write_inprocess(results_dir: Path, rows: list[InProcessRow]) -> Path:
    path = results_dir / RAW / INPROCESS_CSV
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(INPROCESS_FIELDS)
        for row in rows:
            r = row.result
            writer.writerow(
                [
                    row.role,
                    r.label,
                    r.batch_size,
                    "" if r.offered_per_s is None else f"{r.offered_per_s:g}",
                    f"{r.throughput_per_s:.3f}",
                    r.requests,
                    *(f"{r.latency_us[p]:.0f}" for p in PERCENTILES),
                ]
            )
    return path


def read_inprocess(results_dir: Path) -> list[InProcessRow]:
    path = results_dir / RAW / INPROCESS_CSV
    if not path.is_file():
        return []
    rows = []
    with path.open(newline="") as stream:
        for record in csv.DictReader(stream):
            offered = record["offered_per_s"]
            rows.append(
                InProcessRow(
                    role=record["role"],
                    result=InProcessResult(
                        label=record["label"],
                        batch_size=int(record["batch_size"]),
                        throughput_per_s=float(record["throughput_per_s"]),
                        latency_us={p: float(record[f"p{p}_us"]) for p in PERCENTILES},
                        requests=int(record["requests"]),
                        offered_per_s=float(offered) if offered else None,
                    ),
                )
            )
    return rows


def write_run_info(results_dir: Path, info: dict[str, Any]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / RUN_JSON).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_run_info(results_dir: Path) -> dict[str, Any]:
    path = results_dir / RUN_JSON
    return json.loads(path.read_text()) if path.is_file() else {}


def measurement_record(system: str, m: Measurement) -> dict[str, Any]:
    """One row of the combined results.csv."""
    return {
        "system": system,
        "mode": m.level.mode,
        "distribution": m.level.distribution if m.level.mode == "request_rate" else "",
        "load": m.level.value,
        "throughput_per_s": round(m.throughput_per_s, 3),
        **{f"p{p}_us": round(m.latency_us[p]) for p in PERCENTILES},
        "server_queue_us": "" if m.server is None else round(m.server.queue_us),
        "server_compute_us": "" if m.server is None else round(m.server.compute_us),
    }


def inprocess_record(row: InProcessRow) -> dict[str, Any]:
    r = row.result
    open_loop = r.offered_per_s is not None
    return {
        "system": INPROCESS,
        "mode": "request_rate" if open_loop else f"batch {r.batch_size} ({row.role})",
        "distribution": row.role.removeprefix("offered-") if open_loop else "",
        "load": r.offered_per_s if open_loop else 1,
        "throughput_per_s": round(r.throughput_per_s, 3),
        **{f"p{p}_us": round(r.latency_us[p]) for p in PERCENTILES},
        "server_queue_us": "",
        "server_compute_us": "",
    }
