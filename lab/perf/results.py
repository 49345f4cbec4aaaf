"""A run's results folder: where each measurement is written and how it is read back.

The layout is the contract between the places that measure (the local suite, the Kubernetes
Job, which runs perf_analyzer alone) and the report, which reads only files:

    raw/triton-<level>[-run<k>].csv    perf_analyzer -f report of the ensemble at one level
    raw/<model>_v<n>.triton-<level>[-run<k>].csv   the same for each composing model
    raw/microservice-<level>[-run<k>].csv          the FastAPI baseline driven by perf_analyzer

A level measured several times (`-run<k>`) is read back as the median of its runs.
    raw/inprocess.csv                  the in-process floor (written by the suite)
    run.json                           what was measured, where, with which settings
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
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
    r"^(?P<system>triton|microservice)-(?:concurrency-(?P<concurrency>[0-9.]+?)|"
    r"rate-(?P<distribution>constant|poisson)-(?P<rate>[0-9.]+?))(?:-run(?P<run>\d+))?\.csv$"
)


def level_from_filename(name: str) -> tuple[str, LoadLevel] | None:
    match = _SLUG.match(name)
    if match is None:
        return None
    if match["concurrency"]:
        return match["system"], LoadLevel("concurrency", float(match["concurrency"]))
    return match["system"], LoadLevel("request_rate", float(match["rate"]), match["distribution"])


def median_of_runs(runs: Sequence[Measurement]) -> Measurement:
    """One level's repeated runs as one measurement: the median throughput and the median of
    each latency percentile; the server breakdown is the median-throughput run's."""
    if len(runs) == 1:
        return runs[0]
    throughputs = sorted(m.throughput_per_s for m in runs)
    middle = sorted(runs, key=lambda m: m.throughput_per_s)[(len(runs) - 1) // 2]
    return replace(
        middle,
        throughput_per_s=statistics.median(throughputs),
        latency_us={p: statistics.median(m.p(p) for m in runs) for p in middle.latency_us},
        run_throughputs_per_s=tuple(throughputs),
    )


def medians_of_runs(measurements: Sequence[Measurement]) -> list[Measurement]:
    """Measurements grouped by level, each group as its median, in load order."""
    groups: dict[LoadLevel, list[Measurement]] = {}
    for m in measurements:
        groups.setdefault(m.level, []).append(m)
    medians = [median_of_runs(runs) for runs in groups.values()]
    return sorted(medians, key=lambda m: (m.level.mode, m.level.distribution, m.level.value))


def read_measurements(results_dir: Path) -> dict[str, list[Measurement]]:
    """Every perf_analyzer level in raw/, per system, in load order (the median of its runs)."""
    found: dict[str, list[Measurement]] = {TRITON: [], MICROSERVICE: []}
    for path in sorted((results_dir / RAW).glob("*.csv")):
        parsed = level_from_filename(path.name)
        if parsed is None:
            continue
        system, level = parsed
        found[system].append(parse_report(path, level))
    return {system: medians_of_runs(measurements) for system, measurements in found.items()}


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
    role: (
        str  # "batch1-before", "batch1-after", "batch", "served-parallel", "offered-<distribution>"
    )
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
