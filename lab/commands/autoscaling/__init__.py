"""`python -m lab autoscaling ACTION`: the autoscaling simulation and the local loop.

One module per action: `simulate`, `demo`. The product's actions (`calibrate`,
`adapter-values`) are `inference-tools autoscaling ACTION`.
"""

from __future__ import annotations

from lab.commands.autoscaling import demo, simulate

SUMMARY = "simulate the fleet, run the local autoscaling loop"
ACTIONS = [simulate, demo]

DESCRIPTION = """\
Autoscaling studied on this machine:

  simulate  compare scaling signals and policies on simulated traces (not measured)
  demo      run the whole autoscaling loop on this machine, with a timeline and a plot

Run `python -m lab autoscaling ACTION --help` for the options of each.
"""
