"""`python -m lab perf ACTION`: benchmark the served pipeline against its baselines; the report.

One module per action: `run`, `tune`, `profile`, `report`. Measuring a running server alone is the
tooling's `inference-tools perf measure`.
"""

from __future__ import annotations

from lab.commands.perf import profile, report, run, tune

SUMMARY = "benchmark Triton against the in-process and microservice baselines"
ACTIONS = [run, tune, profile, report]

DESCRIPTION = """\
Benchmark a served model with perf_analyzer, next to the baselines it is compared with:

  run      measure, then write the report (results.csv, breakdown.csv, report.md, plots)
  tune     compare encoder instance counts and thread settings, served side by side
  profile  where the time goes: CPU per text by process and library, Triton's stages
  report   write the report again from an existing results folder

Run `python -m lab perf ACTION --help` for the options of each.
"""
