"""Where the CPU goes while a load runs: `perf record` samples every core at a fixed rate, and
each sample is charged to its process and to the library (shared object) it was executing in.

The recording is system-wide (`-a`), not per process: per-process sampling records nothing in
the virtual machines these benchmarks run on, and the system-wide view also shows what else
took the cores during the window (idle time, other processes), which says how far to trust it.
A sample stands for 1/frequency seconds of one core, so a process's samples are its CPU time,
and all samples over (frequency x cores) are the window actually recorded (perf may start late
on a busy machine, so the wall time around it would overstate the window).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

FREQUENCY_HZ = 499  # per core; odd, so as not to beat with a periodic timer
# Libraries grouped by what their time is spent on, first match wins (a path's lower case).
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("ONNX Runtime (the model)", ("onnxruntime",)),
    ("tokenizer (Rust)", ("tokenizers",)),
    ("NumPy", ("numpy", "libopenblas", "libscipy_openblas")),
    ("Python interpreter", ("libpython", "/python3", "cpython-3")),
    ("Triton core and backends", ("tritonserver", "libtriton", "triton_python_backend_stub")),
    ("kernel (system calls, scheduling, copies)", ("[kernel.kallsyms]", "[vdso]")),
    ("C and C++ runtime", ("libc.so", "libstdc++", "libm.so", "ld-linux", "libgcc")),
)
UNCATEGORISED = "other libraries"
_SAMPLE = re.compile(r"^\s*(?P<comm>.*?)\s+(?P<pid>\d+)\s+[0-9a-f]+\s+\((?P<dso>.*)\)\s*$")


class ProfilerMissing(RuntimeError):
    pass


def category(dso: str) -> str:
    lowered = dso.lower()
    for name, needles in CATEGORIES:
        if any(needle in lowered for needle in needles):
            return name
    return UNCATEGORISED


@dataclass(frozen=True)
class CpuProfile:
    """One window's samples: by (process label, library category), plus idle and others."""

    window_s: float
    frequency_hz: int
    cores: int
    samples: Mapping[tuple[str, str], int] = field(default_factory=dict)
    idle_samples: int = 0
    other_samples: int = 0

    def cpu_s(self, label: str | None = None, category_name: str | None = None) -> float:
        """CPU seconds of a process label and/or a category (None: all of them)."""
        count = sum(
            n
            for (lab, cat), n in self.samples.items()
            if (label is None or lab == label) and (category_name is None or cat == category_name)
        )
        return count / self.frequency_hz

    @property
    def labels(self) -> list[str]:
        totals = Counter[str]()
        for (label, _), n in self.samples.items():
            totals[label] += n
        return [label for label, _ in totals.most_common()]

    @property
    def categories(self) -> list[str]:
        totals = Counter[str]()
        for (_, cat), n in self.samples.items():
            totals[cat] += n
        return [cat for cat, _ in totals.most_common()]

    @property
    def idle_s(self) -> float:
        return self.idle_samples / self.frequency_hz

    @property
    def others_s(self) -> float:
        return self.other_samples / self.frequency_hz


def summarise(
    lines: Iterable[str], labels: Mapping[int, str], cores: int, frequency_hz: int = FREQUENCY_HZ
) -> CpuProfile:
    """`perf script -F comm,pid,ip,dso` output, charged to the labelled processes (pid -> label);
    pid 0 is the idle task, and any other pid counts as another process's."""
    samples = Counter[tuple[str, str]]()
    idle = others = 0
    for line in lines:
        match = _SAMPLE.match(line)
        if match is None:
            continue
        pid = int(match["pid"])
        if pid == 0:
            idle += 1
            continue
        label = labels.get(pid)
        if label is None:
            others += 1
            continue
        samples[(label, category(match["dso"]))] += 1
    total = idle + others + sum(samples.values())
    if total == 0:
        raise RuntimeError("perf recorded no samples: is system-wide sampling allowed here?")
    return CpuProfile(
        window_s=total / (frequency_hz * cores),
        frequency_hz=frequency_hz,
        cores=cores,
        samples=dict(samples),
        idle_samples=idle,
        other_samples=others,
    )


def perf_binary() -> str:
    found = shutil.which("perf")
    if found is None:
        raise ProfilerMissing(
            "perf is not installed: `make system-deps` installs it (Debian's linux-perf)"
        )
    return found


def record(out_path: Path, window_s: float, frequency_hz: int = FREQUENCY_HZ) -> None:
    """Sample every core while `sleep window_s` runs, into `out_path`. (Started with a workload,
    perf stops by itself once it has sampled the whole window, however long perf took to start
    on a busy machine; a signal sent on a timer could stop it before its first sample.)"""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    log_path = out_path.with_suffix(".log")
    with log_path.open("w") as log:
        completed = subprocess.run(
            [perf_binary(), "record", "-e", "cpu-clock", "-F", str(frequency_hz), "-a", "-o",
             str(out_path), "--", "sleep", f"{window_s:g}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            timeout=window_s + 120,
        )  # fmt: skip
    if completed.returncode != 0 or not out_path.is_file() or out_path.stat().st_size == 0:
        raise RuntimeError(f"perf record failed; see {log_path}:\n{log_path.read_text()}")


def script_lines(data_path: Path) -> list[str]:
    completed = subprocess.run(
        [perf_binary(), "script", "-i", str(data_path), "-F", "comm,pid,ip,dso"],
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout.splitlines()
