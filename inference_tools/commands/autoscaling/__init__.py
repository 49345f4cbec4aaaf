"""`inference-tools autoscaling ACTION`: plan and check autoscaling on Triton's queue metrics.

One module per action: `calibrate`, `adapter_values`. The simulation and the load step set
beside it are the lab's (`python -m lab autoscaling simulate|cluster-step`).
"""

from __future__ import annotations

from inference_tools.commands.autoscaling import adapter_values, calibrate

SUMMARY = "calibrate the scaling targets, print prometheus-adapter values"
ACTIONS = [calibrate, adapter_values]

DESCRIPTION = """\
Autoscaling on Triton's queue metrics and request rate:

  calibrate       measure where p95 latency crosses the objective, write the targets
  adapter-values  print prometheus-adapter Helm values with an overlay's rules

Run `inference-tools autoscaling ACTION --help` for the options of each.
"""
