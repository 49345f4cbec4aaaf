"""Steady load for a long while: no request fails and the server's memory levels off.

Memory is the resident size of tritonserver and its Python-backend stubs together (what a
container's memory limit counts), sampled every `sample_every_s`. After a warm-up (allocators
and ONNX Runtime's arenas grow to their working size), the median of the last third of the
samples is compared with the median of the first third: a leak shows as steady growth.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from inference_tools.local_server import LocalTritonServer

from lab.reliability.load import ClosedLoopLoad, latency_percentile_s
from lab.reliability.processes import tree_rss_bytes
from lab.reliability.report import ScenarioResult

MIB = 1024 * 1024
# Growth tolerated between the first and last thirds: allocator noise, not a leak.
ALLOWED_GROWTH_BYTES = 48 * MIB
ALLOWED_GROWTH_FRACTION = 0.05


def memory_growth_bytes(samples: list[int]) -> int:
    third = max(1, len(samples) // 3)
    return int(statistics.median(samples[-third:]) - statistics.median(samples[:third]))


def run(
    model_repository: Path,
    *,
    duration_s: float = 60.0,
    warmup_s: float = 10.0,
    workers_per_protocol: int = 2,
    texts_per_request: int = 4,
    sample_every_s: float = 2.0,
    work_dir: Path | None = None,
) -> ScenarioResult:
    samples: list[int] = []
    with LocalTritonServer(model_repository, work_dir=work_dir) as server:
        assert server.process is not None
        targets = {"http": server.http_url, "grpc": server.grpc_url}
        load = ClosedLoopLoad(
            targets, workers=workers_per_protocol, texts_per_request=texts_per_request
        )
        with load:
            started = time.monotonic()
            time.sleep(warmup_s)
            while time.monotonic() - started < duration_s:
                samples.append(tree_rss_bytes(server.process.pid))
                time.sleep(sample_every_s)
    record = load.record
    ok = [o for o in record.snapshot() if o.ok]
    failed = len(record.failures())
    growth = memory_growth_bytes(samples) if samples else 0
    allowed = max(ALLOWED_GROWTH_BYTES, int(ALLOWED_GROWTH_FRACTION * (samples or [0])[0]))
    passed = failed == 0 and growth <= allowed and len(samples) >= 3
    return ScenarioResult(
        scenario="soak",
        load=f"{workers_per_protocol} HTTP + {workers_per_protocol} gRPC clients "
        f"({texts_per_request} texts per request), {duration_s:g} s",
        faults="none: time",
        requests_sent=record.sent,
        requests_failed=failed,
        recovery_s=None,
        passed=passed,
        notes=f"server memory {samples[0] / MIB:.0f} -> {samples[-1] / MIB:.0f} MiB "
        f"(growth {growth / MIB:+.0f} MiB, allowed {allowed / MIB:.0f}); "
        f"p99 latency {latency_percentile_s(ok, 99) * 1000:.0f} ms"
        if samples
        else "no memory samples",
        details={
            "rss_samples_mib": [round(s / MIB, 1) for s in samples],
            "growth_bytes": growth,
            "allowed_growth_bytes": allowed,
            "failures": record.failure_summary(),
        },
    )
