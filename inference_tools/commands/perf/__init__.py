"""`inference-tools perf ACTION`: measure a running server with perf_analyzer; the perf Job's data.

One module per action: `measure`, `dataset`. The benchmark study against the baselines (`perf
run`, `perf tune`, `perf report`) is the lab's: `python -m lab perf`.
"""

from __future__ import annotations

from inference_tools.commands.perf import dataset, measure

SUMMARY = "measure a running Triton; the perf Job's data set (the benchmark study: make perf)"
ACTIONS = [measure, dataset]

DESCRIPTION = """\
Measure a served model with perf_analyzer:

  measure  a running Triton at each load level: throughput, latency, server queue and compute
  dataset  write the benchmark's texts as perf_analyzer --input-data JSON (the perf Job's)

Run `inference-tools perf ACTION --help` for the options of each. The benchmark study against
the in-process and microservice baselines runs from a checkout: `make perf`.
"""
